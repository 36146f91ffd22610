"""The contract between the two sides of the socket: framing, messages, schemas, rendezvous."""

"""What perfd does, once: the commands and the run service that every transport calls."""

"""Looking inside the network (the lecture's part on how networks see)."""

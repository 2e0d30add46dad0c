"""Reading data: labelled and preference pairs for training and evaluation, and ``scan``'s JSON Lines records."""

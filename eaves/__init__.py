"""The ``eaves`` command line: run the stack, manage keys, train the intent model, load-test, benchmark."""

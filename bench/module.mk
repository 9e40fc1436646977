# bench: sources and tests of this module

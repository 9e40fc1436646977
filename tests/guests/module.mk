# tests/guests: sources and tests of this module

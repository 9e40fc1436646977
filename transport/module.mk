# transport: sources and tests of this module

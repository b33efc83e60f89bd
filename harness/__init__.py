"""The test and benchmark harness shared by tests/, scripts/ and lab/ (a JACK server, tiny models, MIDI traffic, stall watch); not shipped in the wheel."""

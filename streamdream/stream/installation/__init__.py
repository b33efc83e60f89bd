"""`streamdream loop`: installation mode. A piece (files or a playlist) looped for days, dreamed, optionally
fed back into itself, slowly evolving, on a daily schedule, supervised by a watchdog, run as a service;
everything in one TOML file. One module per job:

material.py   the files and playlists, joined into one seamless loop
piece.py      the piece TOML, merged once with the command line
evolve.py     the slow seeded walk of the dream's settings
schedule.py   opening hours, with fades
run.py        installation mode on the live engine (feedback guard, evolve and schedule ticks, the log)
watchdog.py   a parent process that restarts a dead or frozen engine
service.py    the systemd unit
"""

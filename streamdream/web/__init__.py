"""The status and control web page (`--web`): web/link.py in the audio process, web/server.py in a
process of its own, the page's files in web/static."""

"""The in-car screen: a local web application the daemon serves (``[screen]``, default 127.0.0.1:8080).

``server.Screen`` is an aiohttp application that runs as a daemon service inside the daemon's
event loop: login with the alprd users, roles, lockout and sessions; the live view of the last
reads and the health strip; an alert that takes the screen (server-sent events) with a tone until
acknowledged and the officer's disposition; BOLO entry, search and evidence holds. Every view of
stored data goes through :func:`alprd.auth.authorize` and is written to the access log, as a
command's would be. ``views`` shapes rows for the page (pure); ``static/`` holds the page itself
(plain HTML, CSS and one JavaScript file, no build step).
"""

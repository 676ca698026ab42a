"""moto's S3 API as a WSGI application, for a real server to serve (gunicorn, with TLS).

moto's own server (werkzeug's development server) ends TLS connections without a
close_notify, which pgBackRest's TLS client reports as "unexpected eof while reading".
"""

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

app = DomainDispatcherApplication(create_backend_app)

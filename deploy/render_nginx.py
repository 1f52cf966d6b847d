"""Render deploy/nginx-site.conf.template: the site file for Debian's nginx, or (`--standalone`) a complete
nginx.conf that an unprivileged nginx runs from a scratch folder (`make deploy-local`, the CI test).

    python deploy/render_nginx.py --listen 80 --app-port 8501 --api-ports 8001 8002 > /etc/nginx/sites-available/emolens
    python deploy/render_nginx.py --standalone --prefix /tmp/emolens-nginx --listen 127.0.0.1:8080 ... > nginx.conf
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx-site.conf.template")
STANDALONE = """{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{site}
}}
"""


def render(listen: str, app_port: int, api_ports: list[int], max_body_mb: int, cert: str | None = None,
           key: str | None = None) -> str:
    """The site configuration; TLS is switched on when both a certificate and its key are given."""
    if bool(cert) != bool(key):
        raise SystemExit("Give both --tls-cert and --tls-key, or neither.")
    tls = (f"    listen {listen.rsplit(':', 1)[0] + ':' if ':' in listen else ''}443 ssl;\n"
           f"    ssl_certificate {cert};\n    ssl_certificate_key {key};\n"
           "    ssl_protocols TLSv1.2 TLSv1.3;") if cert else ""
    site = TEMPLATE.read_text()
    for name, value in {"LISTEN": listen, "APP_PORT": str(app_port), "MAX_BODY_MB": str(max_body_mb), "TLS": tls,
                        "API_SERVERS": "\n".join(f"    server 127.0.0.1:{p};" for p in api_ports)}.items():
        site = site.replace(f"@{name}@", value)
    return site


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="80", help="nginx's listen address (80, or 127.0.0.1:8080)")
    ap.add_argument("--app-port", type=int, default=8501, help="the Streamlit app on 127.0.0.1")
    ap.add_argument("--api-ports", type=int, nargs="+", default=[8001, 8002], help="gunicorn replicas on 127.0.0.1")
    ap.add_argument("--max-body-mb", type=int, default=34, help="request body limit (the API's 32 MB + overhead)")
    ap.add_argument("--tls-cert", default=None)
    ap.add_argument("--tls-key", default=None)
    ap.add_argument("--standalone", action="store_true", help="a whole nginx.conf for an unprivileged nginx")
    ap.add_argument("--prefix", default="/tmp/emolens-nginx", help="with --standalone: pid, logs, temp files")
    args = ap.parse_args(argv)
    site = render(args.listen, args.app_port, args.api_ports, args.max_body_mb, args.tls_cert, args.tls_key)
    # Started by root (a container, CI), nginx's workers would drop to `nobody` and lose access to the scratch
    # folder: keep them as the user who started it. Otherwise the directive is not needed.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    sys.stdout.write(STANDALONE.format(user=user, prefix=args.prefix, site=site) if args.standalone else site)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

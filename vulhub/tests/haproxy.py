"""HAProxy of a test's own in front of several gunicorn nodes on this machine.

Debian's haproxy (`make test-deps`) runs in the foreground with the production example,
deploy/haproxy/haproxy.cfg, written to a scratch folder with only what ties it to Docker
changed: it listens on spare loopback ports, and its nodes are listed by port instead of
found through Compose's DNS. So the tests run the shipped balancing (round robin, no
stickiness), health check, X-Forwarded-For and timeouts. Each response names the node
that served it in `X-Served-By` (SERVED_BY), the example's commented-out line turned on.
"""

import http.client
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from vulhub.ops.pg_cluster import free_port

from .servers import ROOT, binary, running

PRODUCTION_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
SERVED_BY = "X-Served-By"


def node_name(index: int) -> str:
    """The name HAProxy gives the `index`-th node (from 0), as X-Served-By shows it."""
    return f"node{index + 1}"


def config(port: int, node_ports: list[int]) -> str:
    """The production example, listening on loopback `port`, in front of the nodes at `node_ports`."""
    nodes = "".join(
        f"    server {node_name(index)} 127.0.0.1:{node_port}\n" for index, node_port in enumerate(node_ports)
    )
    changes = {
        "    bind :8080\n": f"    bind 127.0.0.1:{port}\n",
        "    bind :8404\n": f"    bind 127.0.0.1:{free_port()}\n",
        " resolvers docker init-addr none\n": "\n",  # the nodes are addresses, not names to resolve
        "    server-template web 10 web:8000\n": nodes,
        f"    #   http-response set-header {SERVED_BY} %s\n": f"    http-response set-header {SERVED_BY} %s\n",
    }
    text = PRODUCTION_CONFIG.read_text()
    for old, new in changes.items():
        # the example changed: this says which line to look at, rather than testing something else
        assert text.count(old) == 1, f"{PRODUCTION_CONFIG} no longer has the line {old.strip()!r} once"
        text = text.replace(old, new)
    return text


def nodes_answering(port: int, count: int) -> set[str]:
    """The nodes that answered `count` requests for /health/ through the proxy at `port`."""
    seen = set()
    for _ in range(count):
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            client.request("GET", "/health/", headers={"Host": "localhost"})
            response = client.getresponse()
            response.read()
            if response.status == 200:
                seen.add(response.getheader(SERVED_BY))
        finally:
            client.close()
    return seen


@contextmanager
def haproxy(node_ports: list[int]):
    """HAProxy balancing round robin over the nodes at `node_ports`; its port, once every node answers through it."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="vulhub-test-haproxy-conf-"))
    path = folder / "haproxy.cfg"
    path.write_text(config(port, node_ports))
    everyone = {node_name(index) for index in range(len(node_ports))}

    def ready() -> bool:
        return nodes_answering(port, 2 * len(node_ports)) == everyone

    try:
        # -db: in the foreground, as a child of the test that ends with it
        with running([binary("haproxy"), "-db", "-f", str(path)], what="haproxy", ready=ready):
            yield port
    finally:
        shutil.rmtree(folder, ignore_errors=True)

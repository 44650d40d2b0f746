"""Container health check without curl: ``python -m scripts.healthcheck URL``.

Exit 0 when ``URL`` answers 2xx within ``--timeout`` seconds, 1 otherwise (the reason
on stderr). HTTPS is verified against ``--cafile`` (the deployment's own CA), host name
included: check a TLS server through a name its certificate carries (``localhost``).
"""

from __future__ import annotations

import argparse
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path


def check(url: str, timeout: float, cafile: Path | None = None) -> str | None:
    """None if ``url`` answers 2xx, else why not."""
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context(
            cafile=str(cafile) if cafile is not None else None
        )
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as reply:
            status = int(reply.status)
    except urllib.error.HTTPError as err:
        return f"{url}: HTTP {err.code}"
    except (urllib.error.URLError, OSError, ssl.CertificateError) as err:
        return f"{url}: {getattr(err, 'reason', err)}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def main(argv: list[str] | None = None) -> int:
    """Check once; the exit code is the verdict."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.healthcheck", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--cafile", type=Path, default=None)
    args = parser.parse_args(argv)
    problem = check(args.url, args.timeout, args.cafile)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Katib: upstream's MySQL root password ("test", components/mysql/secret.yaml) is replaced by a
per-install secret; MySQL initialises its data directory with it and katib-db-manager connects
with it (both read the katib-mysql-secrets Secret)."""
from __future__ import annotations

import base64


def transform(objs, ctx):
    out = []
    for o in objs:
        md = o.get("metadata", {})
        if o.get("kind") == "Secret" and md.get("name") == "katib-mysql-secrets":
            o = {**o, "data": {**(o.get("data") or {}), "MYSQL_ROOT_PASSWORD":
                               base64.b64encode(ctx.secret("katib-mysql-root-password").encode()).decode()}}
        out.append(o)
    return out

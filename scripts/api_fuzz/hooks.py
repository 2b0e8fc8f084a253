"""schemathesis hooks for scripts/api-fuzz: refused requests change nothing, and a reader's
changes are all refused.

Before every request that may change something (not GET), what the API shows is read with
the admin token; after a refusal (4xx) it is read again and must be the same. The fuzz runs
with one worker, so nothing else changes it in between.
"""

import json
import os
import urllib.request

import schemathesis

URL = os.environ["CONVOY_URL"]
ADMIN_TOKEN = os.environ["CONVOY_ADMIN_TOKEN"]
ROLE = os.environ.get("CONVOY_FUZZ_ROLE", "admin")
READER_TOKEN = os.environ.get("CONVOY_READER_TOKEN")

# What a request could change that the API shows. (Enrolment tokens and token revocations
# are not listed by any route.)
VIEWS = [
    "/v1/hosts",
    "/v1/users",
    "/v1/clusters",
    "/v1/patches",
    "/v1/patches/app-dependencies",
    "/v1/patch-hosts",
    "/v1/rolling-maintenance-strategy",
    "/v1/strategy-steps",
    "/v1/alarms",
]

_before = {}


def snapshot():
    views = {}
    for path in VIEWS:
        req = urllib.request.Request(URL + path, headers={"X-Auth-Token": ADMIN_TOKEN})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                views[path] = (response.status, json.loads(response.read()))
        except urllib.error.HTTPError as e:
            views[path] = (e.code, json.loads(e.read()))
    return views


def _key(case):
    return id(case)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.method.upper() != "GET":
        _before[_key(case)] = snapshot()


@schemathesis.check
def refused_requests_change_nothing(ctx, response, case):
    before = _before.pop(_key(case), None)
    if before is None or not 400 <= response.status_code < 500:
        return None
    after = snapshot()
    changed = [path for path in VIEWS if before[path] != after[path]]
    if changed:
        raise AssertionError(
            f"{case.method} {case.path} was refused ({response.status_code}) but changed "
            f"{', '.join(changed)}"
        )
    return None


@schemathesis.check
def readers_change_nothing(ctx, response, case):
    # Other methods on the path (the coverage phase sends TRACE and the like) answer 405.
    method = case.method.upper()
    if ROLE != "reader" or method == "GET" or method != case.operation.method.upper():
        return None
    # Some generated cases leave the token out or change it (401): only the reader's own
    # requests must be refused for the role.
    if response.request.headers.get("X-Auth-Token") != READER_TOKEN:
        return None
    if response.status_code != 403:
        raise AssertionError(
            f"a reader's {case.method} {case.path} answered {response.status_code}, not 403"
        )
    return None

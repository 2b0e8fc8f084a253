"""Setting up and checking the controller scripts/api-fuzz runs against.

    session.py start URL DATA_DIR PID  waits for convoyd, logs in as admin; prints the token
    session.py reader URL ADMIN_TOKEN  adds a reader; prints its token
    session.py host URL DATA_DIR       enrols a host with the site token; prints its credential
    session.py healthy URL TOKEN       fails unless convoyd still answers
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request


def request(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req, timeout=30) as response:
        return response.status, response.headers, response.read()


def login(url, name, password):
    body = {"auth": {"identity": {"methods": ["password"],
                                  "password": {"user": {"name": name, "password": password}}}}}
    _, headers, _ = request("POST", f"{url}/v3/auth/tokens", body)
    return headers["X-Subject-Token"]


def start(url, data_dir, pid):
    deadline = time.monotonic() + 60
    password_file = os.path.join(data_dir, "admin-password")
    while True:
        try:
            os.kill(int(pid), 0)
        except OSError:
            sys.exit("api-fuzz: convoyd exited at start; see its log")
        try:
            request("GET", f"{url}/v3")
            if os.path.exists(password_file):
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            sys.exit("api-fuzz: convoyd did not answer within 60 s")
        time.sleep(0.1)
    with open(password_file) as f:
        password = f.read().strip()
    print(login(url, "admin", password))


def reader(url, admin):
    # A name the fuzz run before is most unlikely to have made.
    name = f"api-fuzz-reader-{os.getpid()}"
    password = os.urandom(16).hex()
    request("POST", f"{url}/v1/users", {"name": name, "password": password, "role": "reader"},
            admin)
    print(login(url, name, password))


def host(url, data_dir):
    with open(os.path.join(data_dir, "agent-token")) as f:
        token = f.read().strip()
    facts = {"capacity_cpus": 1, "capacity_memory_mib": 1024, "load_cpus": 0.0,
             "load_memory_mib": 0, "boot_id": "b", "os": "fuzz", "agent_version": "0",
             "state_fs_free_bytes": 1}
    body = {"enrolment_token": token, "hostname": f"api-fuzz-host-{os.getpid()}",
            "personality": "worker", "facts": facts}
    try:
        _, _, answer = request("POST", f"{url}/v1/agent/enrol", body)
    except urllib.error.HTTPError as e:
        sys.exit(f"api-fuzz: cannot enrol a host: {e.code} {e.read().decode()}")
    print(json.loads(answer)["credential"])


def healthy(url, token):
    status, _, body = request("GET", f"{url}/v1/hosts", token=token)
    if status != 200 or "hosts" not in json.loads(body):
        sys.exit(f"api-fuzz: convoyd answers GET /v1/hosts with {status}")
    print("api-fuzz: convoyd is alive and answers")


if __name__ == "__main__":
    {"start": start, "reader": reader, "host": host, "healthy": healthy}[sys.argv[1]](
        *sys.argv[2:])

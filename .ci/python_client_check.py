"""Another generator's client against the spec: openapi-python-client's output, generated
from spec/openapi.yaml into the directory on PYTHONPATH, drives `mde-sim` through a
collection from request to package link, a scan, and the documented errors, and every answer
parses into the model the spec names for it.

usage: python python_client_check.py http://127.0.0.1:PORT
"""

import sys
import time

import httpx
from mde_py import AuthenticatedClient
from mde_py.api.machine_actions import (
    collect_investigation_package,
    get_machine_action,
    get_package_uri,
    list_machine_actions,
    run_anti_virus_scan,
)
from mde_py.api.machines import list_machines
from mde_py.models import (
    CommentRequest,
    Error,
    MachineAction,
    MachineActionStatus,
    MachineActionType,
    MachineCollection,
    ODataString,
    RunAntiVirusScanRequest,
    ScanType,
)

BASE = sys.argv[1].rstrip("/")
FORM = {
    "grant_type": "client_credentials",
    "client_id": "sim-client",
    "client_secret": "sim-secret",
    "scope": "https://api.securitycenter.microsoft.com/.default",
}
token = httpx.post(f"{BASE}/sim-tenant/oauth2/v2.0/token", data=FORM).json()["access_token"]
client = AuthenticatedClient(base_url=BASE, token=token)

machines = list_machines.sync(client=client)
assert isinstance(machines, MachineCollection), machines
ids = [m.id for m in machines.value]
assert "1e5bc9d7e413ddd7902c2932e418702b84d0cc07" in ids, ids
first, second = ids[0], ids[1]

action = collect_investigation_package.sync(
    id=first, client=client, body=CommentRequest(comment="Collect forensics due to alert 1234")
)
assert isinstance(action, MachineAction), action
assert action.type_ == MachineActionType.COLLECTINVESTIGATIONPACKAGE, action.type_
assert action.status == MachineActionStatus.PENDING, action.status
assert action.creation_date_time_utc.year >= 2026, action.creation_date_time_utc

again = collect_investigation_package.sync_detailed(
    id=first, client=client, body=CommentRequest(comment="again")
)
assert again.status_code == 400 and isinstance(again.parsed, Error), again
assert again.parsed.error.code == "ActiveRequestAlreadyExists", again.parsed

early = get_package_uri.sync_detailed(id=action.id, client=client)
assert early.status_code == 404 and isinstance(early.parsed, Error), early

scan = run_anti_virus_scan.sync(
    id=second,
    client=client,
    body=RunAntiVirusScanRequest(comment="Check machine for viruses", scan_type=ScanType.QUICK),
)
assert isinstance(scan, MachineAction) and scan.scope == "Quick", scan
assert scan.type_ == MachineActionType.RUNANTIVIRUSSCAN, scan.type_

listed = list_machine_actions.sync(client=client, filter_=f"machineId eq '{first}'")
assert [a.id for a in listed.value] == [action.id], listed

# The simulator was started with a collection of 2 s.
for _ in range(50):
    shown = get_machine_action.sync(id=action.id, client=client)
    if shown.status == MachineActionStatus.SUCCEEDED:
        break
    time.sleep(0.2)
assert shown.status == MachineActionStatus.SUCCEEDED, shown.status
link = get_package_uri.sync(id=action.id, client=client)
assert isinstance(link, ODataString), link
assert link.value.startswith('"http') and link.value.endswith('"'), "not a quoted link"

print(
    "openapi-python-client: listMachines, collect 201 then 400, getPackageUri 404 then the"
    " link, scan 201, listMachineActions, getMachineAction: every answer parsed"
)

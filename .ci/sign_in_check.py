"""Microsoft's own sign-in libraries against `mde-sim --tls`: MSAL for Python and
azure-identity each get a token with the client-credentials grant, trusting the simulator's
CA through REQUESTS_CA_BUNDLE / SSL_CERT_FILE, and a `requests` call with each token collects
an investigation package (201). Then azure-identity signs in the ways production automation
does, each token collecting a package on a machine of its own: CertificateCredential (the certificate the simulator
has registered with the app), WorkloadIdentityCredential (the simulator's own federated token)
and ManagedIdentityCredential (App Service's IDENTITY_ENDPOINT and IDENTITY_HEADER, in the
environment).

usage: python sign_in_check.py https://127.0.0.1:PORT CERT_PEM FEDERATED_TOKEN_FILE
"""

import sys

import msal
import requests
from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)

BASE = sys.argv[1].rstrip("/")
TENANT, CLIENT, SECRET = "sim-tenant", "sim-client", "sim-secret"
SCOPE = "https://api.securitycenter.microsoft.com/.default"
# One collection a machine (a second on one machine would be the 400): the documented two, then
# the others the simulator lists.
MACHINES = ["1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "fb9ab6be3965095a09c057be7c90f0a2"]


def msal_token():
    app = msal.ConfidentialClientApplication(
        CLIENT,
        client_credential=SECRET,
        authority=f"{BASE}/{TENANT}",
        # Instance discovery asks login.microsoftonline.com about the authority's host.
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[SCOPE])
    if "access_token" not in result:
        raise SystemExit(f"MSAL got no token: {result}")
    return result["access_token"]


def azure_identity_token():
    credential = ClientSecretCredential(
        TENANT,
        CLIENT,
        SECRET,
        authority=BASE.removeprefix("https://"),
        disable_instance_discovery=True,
    )
    return credential.get_token(SCOPE).token


def collect(token, machine, who):
    answer = requests.post(
        f"{BASE}/api/machines/{machine}/collectInvestigationPackage",
        json={"Comment": f"Collect forensics, signed in with {who}"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if answer.status_code != 201:
        raise SystemExit(f"{who}: {answer.status_code} {answer.text}")
    print(f"{who}: token, then 201 {answer.json()['type']} {answer.json()['status']}")


AUTHORITY = BASE.removeprefix("https://")
collect(msal_token(), MACHINES[0], f"MSAL {msal.__version__}")
token = azure_identity_token()
collect(token, MACHINES[1], "azure-identity ClientSecretCredential")
listed = requests.get(
    f"{BASE}/api/machines", headers={"Authorization": f"Bearer {token}"}, timeout=30
).json()["value"]
others = [m["id"] for m in listed if m["id"] not in MACHINES]
certificate = CertificateCredential(
    TENANT, CLIENT, certificate_path=sys.argv[2], authority=AUTHORITY,
    disable_instance_discovery=True,
)
collect(certificate.get_token(SCOPE).token, others[0], "azure-identity CertificateCredential")
workload = WorkloadIdentityCredential(
    tenant_id=TENANT, client_id=CLIENT, token_file_path=sys.argv[3], authority=AUTHORITY,
    disable_instance_discovery=True,
)
collect(workload.get_token(SCOPE).token, others[1], "azure-identity WorkloadIdentityCredential")
managed = ManagedIdentityCredential().get_token(SCOPE).token
collect(managed, others[2], "azure-identity ManagedIdentityCredential")

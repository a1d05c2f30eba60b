"""Microsoft's own sign-in libraries against `mde-sim --tls`: MSAL for Python and
azure-identity each get a token with the client-credentials grant, trusting the simulator's
CA through REQUESTS_CA_BUNDLE / SSL_CERT_FILE, and a `requests` call with each token collects
an investigation package (201).

usage: python sign_in_check.py https://127.0.0.1:PORT
"""

import sys

import msal
import requests
from azure.identity import ClientSecretCredential

BASE = sys.argv[1].rstrip("/")
TENANT, CLIENT, SECRET = "sim-tenant", "sim-client", "sim-secret"
SCOPE = "https://api.securitycenter.microsoft.com/.default"
# Two documented machines: one collection each (a second on one machine would be the 400).
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


collect(msal_token(), MACHINES[0], f"MSAL {msal.__version__}")
collect(azure_identity_token(), MACHINES[1], "azure-identity ClientSecretCredential")

# SPDX-License-Identifier: LGPL-2.1-or-later
"""TLS material and TLS clients for the integration tests.

Certificates the cluster should accept come from `flctl tls init`
(harness.tls_init); the ones it must refuse (expired, from another CA,
revoked by a CRL) are made here with certtool from Debian's gnutls-bin, as an
operator (or an attacker) would. The clients are Python's ssl module: a rogue
node presenting whatever certificate it has, a device that checks the
server's."""

import os
import shutil
import socket
import ssl
import subprocess
import time

import harness

CERTTOOL = shutil.which("certtool")


def need_certtool():
    if not CERTTOOL:
        raise harness.Skip("certtool is not installed (Debian: gnutls-bin)")


class Certs:
    """certtool in a directory of the test's scratch space."""

    def __init__(self, t, name="certs"):
        need_certtool()
        self.t = t
        self.dir = os.path.join(t.tmp, name)
        os.makedirs(self.dir, exist_ok=True)

    def _run(self, *args):
        p = subprocess.run([CERTTOOL] + list(args), capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise harness.Failure("certtool %s failed: %s%s" % (" ".join(args), p.stdout, p.stderr))

    def _template(self, name, lines):
        path = os.path.join(self.dir, name + ".tmpl")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def key(self, name):
        path = os.path.join(self.dir, name + "-key.pem")
        self._run("--generate-privkey", "--key-type=ecdsa", "--outfile", path)
        return path

    def ca(self, name, cn="another CA"):
        """A self-signed CA: (cert, key)."""
        key = self.key(name)
        cert = os.path.join(self.dir, name + ".pem")
        tmpl = self._template(name, ['cn = "%s"' % cn, "ca", "cert_signing_key", "crl_signing_key",
                                     "expiration_days = 3650"])
        self._run("--generate-self-signed", "--load-privkey", key, "--template", tmpl, "--outfile", cert)
        return cert, key

    def node(self, name, ca, ca_key, hosts=("127.0.0.1",), activation=None, expiration=None, days=365):
        """A node certificate signed by ca for hosts: (cert, key). activation and
        expiration: "YYYY-MM-DD HH:MM:SS" (else valid from now for days)."""
        key = self.key(name)
        cert = os.path.join(self.dir, name + ".pem")
        lines = ['cn = "%s"' % hosts[0], "tls_www_server", "tls_www_client", "signing_key"]
        for h in hosts:
            lines.append(('ip_address = "%s"' if h[0].isdigit() or ":" in h else 'dns_name = "%s"') % h)
        if activation:
            lines += ['activation_date = "%s"' % activation, 'expiration_date = "%s"' % expiration]
        else:
            lines.append("expiration_days = %d" % days)
        tmpl = self._template(name, lines)
        self._run("--generate-certificate", "--load-privkey", key, "--load-ca-certificate", ca,
                  "--load-ca-privkey", ca_key, "--template", tmpl, "--outfile", cert)
        return cert, key

    def crl(self, name, ca, ca_key, revoked):
        """A CRL of ca revoking the certificate file revoked."""
        path = os.path.join(self.dir, name + ".pem")
        tmpl = self._template(name, ["crl_next_update = 30", "crl_number = %d" % int(time.time())])
        self._run("--generate-crl", "--load-ca-privkey", ca_key, "--load-ca-certificate", ca,
                  "--load-certificate", revoked, "--template", tmpl, "--outfile", path)
        return path

    def bundle(self, name, *paths):
        """Several PEM files in one (a CA bundle)."""
        out = os.path.join(self.dir, name + ".pem")
        with open(out, "w") as f:
            for p in paths:
                with open(p) as g:
                    f.write(g.read())
        return out


def client_context(cafile=None, cert=None, key=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def tls_connect(port, cafile=None, cert=None, key=None, host="127.0.0.1", source="127.0.0.1", verify=True,
                timeout=10):
    """A TLS connection to host:port (raises ssl.SSLError or OSError).
    source: the local address, so that refusals can be told apart."""
    raw = socket.create_connection((host, port), timeout=timeout, source_address=(source, 0))
    try:
        return client_context(cafile, cert, key, verify).wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def peer_serial(port, cafile, cert=None, key=None):
    """The serial number (hex, upper case) of the certificate port shows."""
    s = tls_connect(port, cafile, cert, key)
    try:
        return s.getpeercert()["serialNumber"]
    finally:
        s.close()


def refused_after_tls(sock, payload, timeout=10):
    """Sends payload after the handshake and reads until the peer closes:
    (closed, data). A peer that refused our certificate closes (TLS 1.3
    tells the client only after its own handshake is done)."""
    data = b""
    try:
        sock.sendall(payload)
    except (ssl.SSLError, OSError):
        return True, data
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ssl.SSLError, OSError):
            return True, data
        if not chunk:
            return True, data
        data += chunk
    return False, data

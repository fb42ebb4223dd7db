"""The development certificate authority of `hub up --tls`."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509

from hub.tls import ensure_dev_certificates


def _names(cert_file: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n.value) for n in san]


def test_certificates_are_made_once_and_again_when_the_names_change(tmp_path: Path) -> None:
    files = ensure_dev_certificates(tmp_path / "tls")
    assert files.ca_file is not None
    assert _names(files.cert_file) == ["localhost", "127.0.0.1", "::1"]
    for key in (files.key_file, tmp_path / "tls" / "ca-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = files.cert_file.read_bytes(), files.ca_file.read_bytes()
    again = ensure_dev_certificates(tmp_path / "tls")
    assert (again.cert_file.read_bytes(), again.ca_file.read_bytes()) == first
    renamed = ensure_dev_certificates(tmp_path / "tls", ("hub.clinic.test", "127.0.0.1"))
    assert _names(renamed.cert_file) == ["hub.clinic.test", "127.0.0.1"]
    # A new server certificate, signed by the same CA that clients already trust.
    assert renamed.cert_file.read_bytes() != first[0]
    assert renamed.ca_file is not None
    assert renamed.ca_file.read_bytes() == first[1]
    ca = x509.load_pem_x509_certificate(first[1])
    server = x509.load_pem_x509_certificate(renamed.cert_file.read_bytes())
    server.verify_directly_issued_by(ca)

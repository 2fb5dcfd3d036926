"""Content credentials: a signed C2PA manifest in every clip saying an AI model made it.

Each clip carries a manifest (c2pa-python) whose ``c2pa.created`` action has the digital
source type *trainedAlgorithmicMedia* (the standard way to say "AI-generated") and whose
``org.reelbot.generation`` assertion names the model, the seed and the SHA-256 of the prompt
(the prompt itself stays private). The manifest is signed with an ES256 key: the server
owner's own key and certificate chain, or one reelbot makes on first use under
``data/provenance/`` (a small CA of its own and a signing certificate it issued, because
C2PA validators refuse a self-signed signing certificate).

A copy re-encoded to fit an upload limit gets a manifest of its own: ``c2pa.opened`` the
original (an ingredient carrying the original's manifest) then ``c2pa.transcoded``, with the
same generation facts, so the copy verifies on its own and points back to the original.

:func:`verify_clip` reads a clip's manifest back: *trusted* when the signature chains to this
reelbot's own certificate, *valid* when the signature and the file's hashes check out but the
signer is someone else, *invalid* when anything does not match (a tampered file), *missing*
when there is no manifest. Everything here is offline: no timestamp authority, no OCSP.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from pipeline.encode import ClipTooLarge, EncodedClip, fit_clip

log = logging.getLogger(__name__)

MP4 = "video/mp4"
AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.reelbot.generation"
CREATED, OPENED, TRANSCODED = "c2pa.created", "c2pa.opened", "c2pa.transcoded"
UNTRUSTED = "signingCredential.untrusted"
"""A validator's note that it does not know the signer: not a fault of the file."""

PROVENANCE_DIR = "provenance"
KEY_FILE, CERT_FILE, CA_FILE = "signer.key", "signer.pem", "ca.pem"
CERT_YEARS = 10

MANIFEST_MARGIN = 2 * 1024
"""Bytes kept free beyond the measured size of a manifest when a copy must fit a limit."""

State = Literal["trusted", "valid", "invalid", "missing"]


class ProvenanceError(Exception):
    """The key or certificate cannot be used, or the clip could not be signed."""


def _reelbot_version() -> str:
    try:
        return version("reelbot")
    except PackageNotFoundError:
        return "unknown"


# --- who signs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningIdentity:
    """The key and certificate chain clips are signed with (plain paths, from settings)."""

    key_path: Path
    cert_path: Path
    """PEM: the signing certificate first, then the certificates that issued it."""
    made_here: bool = False
    """reelbot makes the pair on first use (under ``data/provenance/``) when it is missing."""

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SigningIdentity:
        """reelbot's own key and certificate under ``data_dir``, made on first use."""
        folder = data_dir / PROVENANCE_DIR
        return cls(folder / KEY_FILE, folder / CERT_FILE, made_here=True)

    def ensure(self) -> None:
        """Make reelbot's own pair if it is missing; check that the pair signs a manifest
        that validates (a certificate without the usages C2PA requires does not).

        Raises :class:`ProvenanceError` with a sentence naming the files."""
        import c2pa

        try:
            with self.signer() as signer, c2pa.Builder(_SELF_TEST_MANIFEST) as builder:
                builder.sign(signer, "image/png", io.BytesIO(_ONE_PIXEL_PNG), io.BytesIO())
        except c2pa.C2paError as exc:
            raise ProvenanceError(
                f"The signing key {self.key_path} and certificate {self.cert_path} cannot sign"
                f" content credentials: {exc}"
            ) from exc

    def signer(self) -> Any:
        """A c2pa ``Signer`` for this pair (made first, if it is reelbot's own and missing)."""
        if self.made_here and not (self.key_path.is_file() and self.cert_path.is_file()):
            make_identity(self.key_path.parent)
        return _signer(self)

    def trust_anchor(self) -> str | None:
        """The root of the chain (PEM), which clips signed here chain to; None without one."""
        if not self.cert_path.is_file():
            return None
        certificates = _pem_blocks(self.cert_path.read_text())
        return certificates[-1] if certificates else None


def make_identity(folder: Path) -> None:
    """Write a new CA, a signing key and its certificate into ``folder``.

    Several processes (the bot and its workers) may start at once on a new data folder: each
    writes into a private folder and renames it into place, and whoever comes second keeps
    what the first made."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        ca_pem, key_pem, leaf_pem = _new_chain()
        key_file = scratch / KEY_FILE
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
        (scratch / CERT_FILE).write_bytes(leaf_pem + ca_pem)
        (scratch / CA_FILE).write_bytes(ca_pem)
        try:
            scratch.rename(folder)
        except OSError:
            if not (folder / KEY_FILE).is_file():
                raise
            log.debug("another process made the signing key in %s first", folder)
            return
        log.info("made a signing key and certificate for content credentials in %s", folder)
    finally:
        if scratch.exists():
            for path in scratch.iterdir():
                path.unlink()
            scratch.rmdir()


def _new_chain() -> tuple[bytes, bytes, bytes]:
    """An ES256 CA, a signing key and its certificate issued by the CA (with the extensions
    C2PA asks for), as PEM: the CA's certificate, the key, the signing certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reelbot"),
            ]
        )

    def usage(*, sign_data: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign_data,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=not sign_data,
            crl_sign=not sign_data,
            encipher_only=False,
            decipher_only=False,
        )

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("reelbot content credentials CA"))
        .issuer_name(name("reelbot content credentials CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365 * CERT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(sign_data=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("reelbot clip signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365 * CERT_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign_data=True), critical=True)
        .add_extension(
            # One of the extended key usages C2PA validators accept for signing certificates.
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem), key_pem, leaf.public_bytes(pem)


def _pem_blocks(text: str) -> list[str]:
    end = "-----END CERTIFICATE-----"
    return [block.strip() + "\n" + end + "\n" for block in text.split(end)[:-1]]


_SELF_TEST_MANIFEST = {
    "claim_generator_info": [{"name": "reelbot"}],
    "assertions": [
        {
            "label": "c2pa.actions",
            "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": AI_SOURCE_TYPE}]},
        }
    ],
}
_ONE_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC"
)


def _signer_info(identity: SigningIdentity) -> Any:
    import c2pa

    try:
        key = identity.key_path.read_text()
        chain = identity.cert_path.read_text()
    except OSError as exc:
        raise ProvenanceError(f"Cannot read the signing key or certificate: {exc}.") from exc
    if "PRIVATE KEY" not in key:
        raise ProvenanceError(f"{identity.key_path} holds no PEM private key.")
    if not _pem_blocks(chain):
        raise ProvenanceError(f"{identity.cert_path} holds no PEM certificate.")
    return c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain.encode(), key.encode(), None)


def _signer(identity: SigningIdentity) -> Any:
    import c2pa

    try:
        return c2pa.Signer.from_info(_signer_info(identity))
    except c2pa.C2paError as exc:
        raise ProvenanceError(
            f"The signing key {identity.key_path} and certificate {identity.cert_path} cannot"
            f" sign content credentials (an ES256 key, and a certificate chain whose first"
            f" certificate has it): {exc}"
        ) from exc


# --- what the manifest says -------------------------------------------------------------


@dataclass(frozen=True)
class ClipFacts:
    """What a clip's manifest states about how it was made."""

    model: str
    seed: int
    prompt_sha256: str

    @classmethod
    def of(cls, *, model: str, seed: int, prompt: str) -> ClipFacts:
        return cls(model, seed, prompt_hash(prompt))

    def assertion(self) -> dict[str, Any]:
        return {
            "label": GENERATION_LABEL,
            "data": {
                "generator": "reelbot",
                "model": self.model,
                "seed": self.seed,
                "prompt_sha256": self.prompt_sha256,
            },
        }


def prompt_hash(prompt: str) -> str:
    """The SHA-256 of the prompt's UTF-8 bytes, in hex (what manifests state)."""
    return hashlib.sha256(prompt.encode("utf-8", errors="replace")).hexdigest()


def _manifest(facts: ClipFacts, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "claim_generator_info": [{"name": "reelbot", "version": _reelbot_version()}],
        "title": "reelbot clip",
        "format": MP4,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}, facts.assertion()],
    }


def _agent() -> dict[str, str]:
    return {"name": "reelbot", "version": _reelbot_version()}


# --- signing ------------------------------------------------------------------------------


def sign_clip(clip: EncodedClip, facts: ClipFacts, identity: SigningIdentity) -> EncodedClip:
    """Embed a signed manifest in the new clip at ``clip.path``: made by an AI model."""
    import c2pa

    created = {
        "action": CREATED,
        "digitalSourceType": AI_SOURCE_TYPE,
        "softwareAgent": _agent(),
        "description": f"Generated by the AI video model {facts.model}",
    }
    with c2pa.Builder(_manifest(facts, [created])) as builder:
        _sign_in_place(builder, clip.path, identity)
    return replace(clip, size_bytes=clip.path.stat().st_size)


def credit(clip: EncodedClip, facts: ClipFacts, identity: SigningIdentity) -> EncodedClip:
    """:func:`sign_clip`, or the clip unsigned when it cannot be signed (the log says why):
    content credentials never cost a user their clip."""
    try:
        return sign_clip(clip, facts, identity)
    except (ProvenanceError, OSError):
        log.exception("clip %s goes out without content credentials", clip.path.name)
        return clip


def sign_copy(
    copy: EncodedClip, original: Path, facts: ClipFacts, identity: SigningIdentity
) -> EncodedClip:
    """Embed a signed manifest in ``copy``, a re-encoding of the signed clip ``original``."""
    import c2pa

    transcoded = {
        "action": TRANSCODED,
        # Still wholly made by the model: re-encoding adds no other source.
        "digitalSourceType": AI_SOURCE_TYPE,
        "softwareAgent": _agent(),
        "description": "Re-encoded to fit an upload limit",
    }
    with c2pa.Builder(_manifest(facts, [transcoded])) as builder:
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
        with original.open("rb") as source:
            builder.add_ingredient(
                {"title": original.name, "relationship": "parentOf"}, MP4, source
            )
        _sign_in_place(builder, copy.path, identity)
    return replace(copy, size_bytes=copy.path.stat().st_size)


def _sign_in_place(builder: Any, path: Path, identity: SigningIdentity) -> None:
    import c2pa

    signed = path.with_name(f".{path.stem}.signed{path.suffix}")
    try:
        with identity.signer() as signer, path.open("rb") as source, signed.open("w+b") as dest:
            builder.sign(signer, MP4, source, dest)
        os.replace(signed, path)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"Could not sign {path.name}: {exc}") from exc
    finally:
        signed.unlink(missing_ok=True)


def fit_clip_signed(
    path: Path, max_bytes: int, *, out_path: Path, identity: SigningIdentity
) -> EncodedClip:
    """:func:`~pipeline.encode.fit_clip`, keeping content credentials.

    A copy of a clip whose credentials hold is signed again, with the original as its
    ingredient, and its manifest counts against ``max_bytes``. A clip without valid
    credentials gets a copy without any: a changed file is never signed anew. Raises
    ClipTooLarge when nothing fits."""
    facts = _generation_facts(path)
    if facts is None or path.stat().st_size <= max_bytes:
        # A byte-for-byte copy keeps the original's manifest, valid or not.
        return fit_clip(path, max_bytes, out_path=out_path)
    try:
        return _fit_and_sign(path, max_bytes, out_path, facts, identity)
    except ProvenanceError:
        log.exception("the copy %s goes out without content credentials", out_path.name)
        return fit_clip(path, max_bytes, out_path=out_path)


def _fit_and_sign(
    path: Path, max_bytes: int, out_path: Path, facts: ClipFacts, identity: SigningIdentity
) -> EncodedClip:
    # The copy's manifest holds the original's as well as its own.
    room = max_bytes - 2 * _manifest_bytes(path) - MANIFEST_MARGIN
    for _ in range(2):
        try:
            copy = fit_clip(path, max(1, room), out_path=out_path)
        except ClipTooLarge as smallest:
            copy = smallest.best
        unsigned_bytes = copy.size_bytes
        copy = sign_copy(copy, path, facts, identity)
        if copy.size_bytes <= max_bytes:
            return copy
        room = max_bytes - (copy.size_bytes - unsigned_bytes)
    raise ClipTooLarge(copy, max_bytes)


def _manifest_bytes(path: Path) -> int:
    """The size of the MP4's top-level ``uuid`` boxes, where C2PA keeps the manifest."""
    total = 0
    with path.open("rb") as mp4:
        while header := mp4.read(8):
            if len(header) < 8:
                break
            size, kind = int.from_bytes(header[:4], "big"), header[4:]
            header_size = 8
            if size == 1:
                size, header_size = int.from_bytes(mp4.read(8), "big"), 16
            if size == 0:
                break
            if kind == b"uuid":
                total += size
            mp4.seek(size - header_size, os.SEEK_CUR)
    return total


def _generation_facts(path: Path) -> ClipFacts | None:
    """The generation facts the clip's valid manifest states, if it has one that says them."""
    report = verify_clip(path)
    if not report.valid:
        return None
    if report.model is None or report.seed is None or report.prompt_sha256 is None:
        return None
    return ClipFacts(report.model, report.seed, report.prompt_sha256)


# --- verifying ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvenanceReport:
    """What a clip's content credentials say, and whether they hold."""

    state: State
    ai_generated: bool = False
    model: str | None = None
    seed: int | None = None
    prompt_sha256: str | None = None
    signer: str | None = None
    """Who signed: the signing certificate's common name and organisation."""
    re_encoded: bool = False
    """The clip is a re-encoded copy (``c2pa.transcoded``) of an original."""
    original_valid: bool | None = None
    """For a copy: whether the original's manifest, carried inside, checked out."""
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.state in ("trusted", "valid")

    def summary(self) -> str:
        """One sentence: whether the credentials hold and who signed them."""
        if self.state == "missing":
            return "No content credentials: this file carries no C2PA manifest."
        if self.state == "invalid":
            return "INVALID content credentials: the file was changed after it was signed."
        who = self.signer or "an unnamed signer"
        if self.state == "trusted":
            return f"Valid content credentials, signed by this reelbot ({who})."
        return (
            f"Valid content credentials, signed by {who}"
            " (a certificate this reelbot does not know)."
        )

    def lines(self) -> list[str]:
        """The summary, then each fact the manifest states."""
        found = [self.summary()]
        if self.state == "missing":
            return found
        if self.ai_generated:
            found.append("Made by an AI model (digital source type: trained algorithmic media).")
        if self.model is not None:
            found.append(f"Model: {self.model}")
        if self.seed is not None:
            found.append(f"Seed: {self.seed}")
        if self.prompt_sha256 is not None:
            found.append(f"Prompt SHA-256: {self.prompt_sha256}")
        if self.re_encoded:
            original = {True: "valid", False: "INVALID", None: "not checked"}[self.original_valid]
            found.append(f"Re-encoded from the original clip, whose credentials are {original}.")
        found.extend(f"Problem: {problem}" for problem in self.problems)
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "valid": self.valid,
            "ai_generated": self.ai_generated,
            "model": self.model,
            "seed": self.seed,
            "prompt_sha256": self.prompt_sha256,
            "signer": self.signer,
            "re_encoded": self.re_encoded,
            "original_valid": self.original_valid,
            "problems": list(self.problems),
        }


def verify_clip(path: Path, *, trust_anchor: str | None = None) -> ProvenanceReport:
    """Read and check the manifest of the MP4 at ``path``.

    ``trust_anchor`` (PEM) is the root certificate a *trusted* signature chains to."""
    import c2pa

    context = None
    if trust_anchor is not None:
        context = c2pa.Context.from_dict(
            {"trust": {"trust_anchors": trust_anchor}, "verify": {"verify_trust": True}}
        )
    try:
        with path.open("rb") as stream:
            reader = c2pa.Reader.try_create(MP4, stream, None, context)
            if reader is None:
                return ProvenanceReport("missing")
            with reader:
                return _report(
                    reader.get_validation_state(),
                    reader.get_active_manifest() or {},
                    reader.get_validation_results() or {},
                )
    except c2pa.C2paError as exc:
        return ProvenanceReport("invalid", problems=(f"the manifest cannot be read: {exc}",))


def _report(
    state: str | None, manifest: dict[str, Any], results: dict[str, Any]
) -> ProvenanceReport:
    assertions = {item["label"]: item.get("data", {}) for item in manifest.get("assertions", [])}
    actions = [
        action
        for label, data in assertions.items()
        if label.startswith("c2pa.actions")
        for action in data.get("actions", [])
    ]
    facts = assertions.get(GENERATION_LABEL, {})
    signature = manifest.get("signature_info", {})
    signer = ", ".join(
        part for part in (signature.get("common_name"), signature.get("issuer")) if part
    )
    failures = results.get("activeManifest", {}).get("failure", [])
    problems = tuple(
        str(failure.get("explanation") or failure.get("code"))
        for failure in failures
        if failure.get("code") != UNTRUSTED
    )
    re_encoded = any(action.get("action") == TRANSCODED for action in actions)
    return ProvenanceReport(
        state=_state(state),
        ai_generated=any(action.get("digitalSourceType") == AI_SOURCE_TYPE for action in actions),
        model=_text(facts.get("model")),
        seed=facts["seed"] if isinstance(facts.get("seed"), int) else None,
        prompt_sha256=_text(facts.get("prompt_sha256")),
        signer=signer or None,
        re_encoded=re_encoded,
        original_valid=_original_valid(results) if re_encoded else None,
        problems=problems,
    )


def _state(state: str | None) -> State:
    if state == "Trusted":
        return "trusted"
    if state == "Valid":
        return "valid"
    return "invalid"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _original_valid(results: dict[str, Any]) -> bool | None:
    deltas = results.get("ingredientDeltas") or []
    if not deltas:
        return None
    return not any(
        failure.get("code") != UNTRUSTED
        for delta in deltas
        for failure in delta.get("validationDeltas", {}).get("failure", [])
    )


def report_json(report: ProvenanceReport) -> str:
    return json.dumps(report.as_dict(), indent=2, sort_keys=True)

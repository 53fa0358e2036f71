// Verify a city's signed receipt in Node.js, written from the documented formats alone:
// docs/audit.md ("Receipts": the members, the signed bytes, the steps) and docs/tokens.md
// ("The manifest": manifest.json, signed by the region's root key). Only Node's built-in crypto.

import crypto from "node:crypto";
import fs from "node:fs";

// Canonical JSON: object members sorted by name, no whitespace, UTF-8. JSON.stringify already
// escapes only `"`, `\` and control characters, and writes integers in plain decimal.
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const names = Object.keys(value).sort();
    return `{${names.map((n) => `${JSON.stringify(n)}:${canonicalJson(value[n])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function base64url(text) {
  return Buffer.from(text, "base64url");
}

function ed25519PublicKey(text) {
  const raw = base64url(text);
  if (raw.length !== 32) throw new Error("a public key must be 32 bytes");
  return crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
                                  format: "jwk" });
}

function sha256Hex(bytes) {
  return crypto.createHash("sha256").update(bytes).digest("hex");
}

// The `manifest` object of a manifest.json whose signature verifies with the pinned root key
// (root/root.pub: base64url of the raw key).
export function loadManifest(manifestPath, rootPublicKeyPath) {
  const document = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
  const rootKey = ed25519PublicKey(fs.readFileSync(rootPublicKeyPath, "utf8").trim());
  const { signature, manifest } = document;
  if (signature?.alg !== "EdDSA") throw new Error("the manifest's signature is not EdDSA");
  const signed = Buffer.from(canonicalJson(manifest), "utf8");
  if (!crypto.verify(null, signed, rootKey, base64url(signature.value))) {
    throw new Error("the manifest's signature does not verify with the root key");
  }
  return manifest;
}

const TEXT_MEMBERS = ["city", "kid", "jti", "response_sha256", "time", "signature"];

// Throws unless `city` signed this receipt (its JSON text) for exactly these plan and response
// bytes, with a key the manifest lists for it at the receipt's time. Returns the receipt.
export function verifyReceipt(receiptText, { manifest, city, planBytes, responseBytes }) {
  const receipt = JSON.parse(receiptText);
  for (const name of TEXT_MEMBERS) {
    if (typeof receipt[name] !== "string") throw new Error(`the receipt has no ${name}`);
  }
  if (!Number.isInteger(receipt.audit_index)) throw new Error("the receipt has no audit_index");
  const planHash = receipt.plan_sha256 ?? receipt.request_sha256;
  if (typeof planHash !== "string") throw new Error("the receipt has no plan_sha256");
  if ("plan_sha256" in receipt && "request_sha256" in receipt
      && receipt.plan_sha256 !== receipt.request_sha256) {
    throw new Error("the receipt's plan_sha256 and request_sha256 differ");
  }
  if (receipt.city !== city) throw new Error(`the receipt is from ${receipt.city}, not ${city}`);

  const time = Date.parse(receipt.time);
  const member = manifest.members.find((m) => m.id === city);
  const key = member?.keys.find((k) => k.kid === receipt.kid
    && Date.parse(k.not_before) <= time && (k.not_after === null || time < Date.parse(k.not_after)));
  if (!key) throw new Error(`${receipt.kid} was not a key of ${city} at ${receipt.time}`);

  const { signature, ...signedMembers } = receipt;
  const signed = Buffer.from(canonicalJson(signedMembers), "utf8");
  if (!crypto.verify(null, signed, ed25519PublicKey(key.public_key), base64url(signature))) {
    throw new Error("the receipt's signature does not verify");
  }
  if (planHash !== sha256Hex(planBytes)) throw new Error("the receipt is for another plan");
  if (receipt.response_sha256 !== sha256Hex(responseBytes)) {
    throw new Error("the receipt is for another response");
  }
  return receipt;
}

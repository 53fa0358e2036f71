// Ask a cityfed federation gateway one question from Node.js and verify every city's receipt
// against what that city returned (receipts.mjs, from docs/audit.md alone):
//
//   node verify-receipts.mjs --region DIR --as MEMBER [--gateway-member M] \
//        HOST:PORT PURPOSE "SELECT sex, count(*) FROM population GROUP BY sex"
//   node verify-receipts.mjs --region DIR --saved ANSWER.json
//
// The second form checks a saved `cityfed query --json` answer instead (its plan and each
// city's response are base64). DIR is the region folder: manifest.json, root/root.pub, and for
// the first form members/MEMBER/tls.{key,pem} and root/ca.pem.
//
// Prints {"plan_sha256", "cities": [{"city", "status", "verified", "audit_index" | "error"}]}.
// Exits 0 when every answering city's receipt verifies, 3 when one does not, 1 on a call error.

import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { loadManifest, verifyReceipt } from "./receipts.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = path.resolve(here, "../../proto");

const { values: options, positionals } = parseArgs({
  options: {
    region: { type: "string" },
    as: { type: "string" },
    "gateway-member": { type: "string" },
    saved: { type: "string" },
  },
  allowPositionals: true,
});
const [address, purpose, sql] = positionals;
if (!options.region || !(options.saved || (options.as && address && purpose && sql))) {
  console.error("usage: node verify-receipts.mjs --region DIR --as MEMBER HOST:PORT PURPOSE SQL\n"
                + "       node verify-receipts.mjs --region DIR --saved ANSWER.json");
  process.exit(2);
}
const region = options.region;
const manifest = loadManifest(path.join(region, "manifest.json"),
                              path.join(region, "root", "root.pub"));

// One entry per city: {city, status, receipt (JSON text or ""), response (bytes)}.
function report(planBytes, cities) {
  let allVerified = true;
  const results = cities.map(({ city, status, receipt, response }) => {
    if (!receipt) return { city, status, verified: false, error: "no receipt" };
    try {
      const checked = verifyReceipt(receipt, { manifest, city, planBytes, responseBytes: response });
      return { city, status, verified: true, audit_index: checked.audit_index };
    } catch (error) {
      allVerified = false;
      return { city, status, verified: false, error: error.message };
    }
  });
  const answered = results.filter((r) => r.status === "CITY_STATUS_ANSWERED" || r.status === "answered");
  if (answered.some((r) => !r.verified)) allVerified = false;
  console.log(JSON.stringify({
    plan_sha256: crypto.createHash("sha256").update(planBytes).digest("hex"),
    cities: results,
  }));
  process.exit(allVerified ? 0 : 3);
}

if (options.saved) {
  const saved = JSON.parse(fs.readFileSync(options.saved, "utf8"));
  report(Buffer.from(saved.plan, "base64"), saved.cities.map((c) => ({
    city: c.city, status: c.status, receipt: c.receipt ? JSON.stringify(c.receipt) : "",
    response: Buffer.from(c.response ?? "", "base64"),
  })));
} else {
  const definition = protoLoader.loadSync("cityfed/v1/federation.proto", {
    includeDirs: [protoRoot], keepCase: true, longs: String, enums: String, defaults: true,
    oneofs: true,
  });
  const { FederationService } = grpc.loadPackageDefinition(definition).cityfed.v1;
  const member = path.join(region, "members", options.as);
  const credentials = grpc.credentials.createSsl(
    fs.readFileSync(path.join(region, "root", "ca.pem")),
    fs.readFileSync(path.join(member, "tls.key")),
    fs.readFileSync(path.join(member, "tls.pem")),
  );
  const client = new FederationService(address, credentials, {
    "grpc.ssl_target_name_override":
      `${options["gateway-member"] ?? options.as}.${manifest.region}.cityfed`,
  });
  client.FederatedAggregate({ sql, purpose }, { deadline: Date.now() + 20_000 }, (error, answer) => {
    client.close();
    if (error) {
      console.error(JSON.stringify({ code: grpc.status[error.code], details: error.details }));
      process.exit(1);
    }
    report(answer.plan, answer.outcomes.map((o) => ({
      city: o.city, status: o.status, receipt: o.receipt, response: o.response,
    })));
  });
}

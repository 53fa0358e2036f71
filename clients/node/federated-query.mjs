// Ask a cityfed federation gateway one question from Node.js: the stubs are generated at run
// time from proto/cityfed/v1, as an integrator in any language would generate them, and the
// call goes over mutual TLS with a member's certificate from a region folder.
//
//   node federated-query.mjs --region DIR --as MEMBER [--gateway-member M] \
//        HOST:PORT PURPOSE "SELECT sex, count(*) FROM population GROUP BY sex"
//
// DIR is the folder `cityfed region init` wrote (root/ca.pem, members/MEMBER/tls.{key,pem},
// manifest.json). The gateway's certificate is checked to name the gateway's member
// (M, by default MEMBER): M.<region>.cityfed.
//
// Prints the answer as JSON: column names, rows of {kind: value} cells exactly as they arrived
// (64-bit integers as strings, decimals as exact text), and one outcome per city.
// On an error prints {"code": "INVALID_ARGUMENT", "details": "..."} to stderr and exits 1.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = path.resolve(here, "../../proto");

const { values: options, positionals } = parseArgs({
  options: {
    region: { type: "string" },
    as: { type: "string" },
    "gateway-member": { type: "string" },
  },
  allowPositionals: true,
});
const [address, purpose, sql] = positionals;
if (!options.region || !options.as || !address || !purpose || !sql) {
  console.error("usage: node federated-query.mjs --region DIR --as MEMBER HOST:PORT PURPOSE SQL");
  process.exit(2);
}

const definition = protoLoader.loadSync("cityfed/v1/federation.proto", {
  includeDirs: [protoRoot],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { FederationService } = grpc.loadPackageDefinition(definition).cityfed.v1;

const region = options.region;
const member = path.join(region, "members", options.as);
const regionName = JSON.parse(fs.readFileSync(path.join(region, "manifest.json"))).manifest.region;
const gatewayMember = options["gateway-member"] ?? options.as;
const credentials = grpc.credentials.createSsl(
  fs.readFileSync(path.join(region, "root", "ca.pem")),
  fs.readFileSync(path.join(member, "tls.key")),
  fs.readFileSync(path.join(member, "tls.pem")),
);

function cell(value) {
  return value.kind ? { [value.kind]: value[value.kind] } : { null: true };
}

const client = new FederationService(address, credentials, {
  "grpc.ssl_target_name_override": `${gatewayMember}.${regionName}.cityfed`,
});
client.FederatedAggregate({ sql, purpose }, { deadline: Date.now() + 20_000 }, (error, response) => {
  client.close();
  if (error) {
    console.error(JSON.stringify({ code: grpc.status[error.code], details: error.details }));
    process.exit(1);
  }
  console.log(JSON.stringify({
    columns: response.column_names,
    rows: response.rows.map((row) => row.values.map(cell)),
    complete: response.complete,
    cities: response.outcomes.map((o) => ({ city: o.city, status: o.status, code: o.code })),
  }));
});

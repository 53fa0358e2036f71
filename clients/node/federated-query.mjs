// Ask a cityfed federation gateway one question from Node.js: the stubs are generated at run
// time from proto/cityfed/v1, as an integrator in any language would generate them.
//
//   node federated-query.mjs HOST:PORT "SELECT sex, count(*) FROM population GROUP BY sex"
//
// Prints the answer as JSON: column names, rows of {kind: value} cells exactly as they arrived
// (64-bit integers as strings, decimals as exact text), and one outcome per city.
// On an error prints {"code": "INVALID_ARGUMENT", "details": "..."} to stderr and exits 1.

import path from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = path.resolve(here, "../../proto");

const definition = protoLoader.loadSync("cityfed/v1/federation.proto", {
  includeDirs: [protoRoot],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { FederationService } = grpc.loadPackageDefinition(definition).cityfed.v1;

function cell(value) {
  return value.kind ? { [value.kind]: value[value.kind] } : { null: true };
}

const [address, sql] = process.argv.slice(2);
if (!address || !sql) {
  console.error("usage: node federated-query.mjs HOST:PORT SQL");
  process.exit(2);
}

const client = new FederationService(address, grpc.credentials.createInsecure());
client.FederatedAggregate({ sql }, { deadline: Date.now() + 20_000 }, (error, response) => {
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

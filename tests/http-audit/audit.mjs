// Runs the graphql-http package's GraphQL-over-HTTP server audits against a
// running LeadRank server and fails on any error or warning.
//
//   node tests/http-audit/audit.mjs http://127.0.0.1:8080/graphql
//
// The audits send anonymous `{ __typename }`-style queries, which LeadRank
// answers without a token.
import { auditServer } from 'graphql-http';

const url = process.argv[2] ?? process.env.GRAPHQL_URL ?? 'http://127.0.0.1:8080/graphql';
const results = await auditServer({ url });
let failed = 0;
for (const result of results) {
  if (result.status === 'ok') {
    console.log(`ok    ${result.id} ${result.name}`);
    continue;
  }
  failed += 1;
  console.log(`${result.status.padEnd(5)} ${result.id} ${result.name}`);
  console.log(`      ${result.reason}`);
  if (result.response) {
    const body = await result.response.text().catch(() => '');
    console.log(`      HTTP ${result.response.status} ${result.response.headers.get('content-type')}: ${body.slice(0, 300)}`);
  }
}
const passed = results.length - failed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);

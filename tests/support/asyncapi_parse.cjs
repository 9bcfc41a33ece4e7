// Parses each AsyncAPI document named on the command line with the official parser (@asyncapi/parser), printing
// every diagnostic as a JSON line; exits 1 when a document cannot be parsed or has an error or a warning.
const { Parser } = require('@asyncapi/parser');
const { readFileSync } = require('node:fs');

(async () => {
  const parser = new Parser();
  let failed = 0;
  for (const file of process.argv.slice(2)) {
    const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));
    for (const d of diagnostics) {
      console.log(JSON.stringify({ file, severity: d.severity, code: d.code, message: d.message, path: d.path.join('/') }));
    }
    if (!document || diagnostics.some((d) => d.severity <= 1)) failed = 1;  // 0 error, 1 warning, 2 info, 3 hint
  }
  process.exit(failed);
})();

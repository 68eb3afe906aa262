// The yardstick: a server of the same shape as the original Node/Express
// replica (one route, the page sent with res.send on every GET), serving
// bytes that omikuji rendered, so every server in the benchmark sends the
// same body.
//
//   node server.js PORT PAGE.html SLIP.json
'use strict';

const fs = require('fs');
const express = require('express');

const [port, pageFile, jsonFile] = process.argv.slice(2);
if (!/^[0-9]+$/.test(port || '') || !pageFile || !jsonFile) {
  console.error('usage: node server.js PORT PAGE.html SLIP.json');
  process.exit(2);
}
const page = fs.readFileSync(pageFile, 'utf8');
const slip = fs.readFileSync(jsonFile, 'utf8');

const app = express();
app.get('/', (req, res) => {
  res.send(page);
});
app.get('/slip.json', (req, res) => {
  res.type('application/json').send(slip);
});

const server = app.listen(Number(port), '127.0.0.1', () => {
  console.log(`express yardstick on 127.0.0.1:${port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

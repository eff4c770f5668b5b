// Parses every Loki query in the bundled dashboards with Grafana's LogQL grammar and fails on
// any syntax error node. Prometheus queries are checked for balanced brackets only.
const fs = require("fs");
const path = require("path");
const { parser } = require("@grafana/lezer-logql");

const dir = process.argv[2];
let bad = 0, checked = 0;
for (const f of fs.readdirSync(dir).filter((n) => n.endsWith(".json"))) {
  const d = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
  const exprs = [];
  for (const p of d.panels || [])
    for (const t of p.targets || [])
      exprs.push({ ds: (t.datasource || p.datasource || {}).type, expr: t.expr, where: `${f}: ${p.title}` });
  for (const v of (d.templating || {}).list || [])
    if ((v.datasource || {}).type === "loki" && !String(v.query).startsWith("label_values"))
      exprs.push({ ds: "loki", expr: v.query, where: `${f}: variable ${v.name}` });
  for (const e of exprs) {
    checked++;
    if (e.ds !== "loki") {
      let depth = 0;
      for (const c of e.expr) { if ("([{".includes(c)) depth++; if (")]}".includes(c)) depth--; }
      if (depth !== 0) { bad++; console.log(`UNBALANCED ${e.where}: ${e.expr}`); }
      continue;
    }
    // Grafana substitutes template variables before sending; do the same for parsing.
    const q = e.expr.replace(/\$__\w+/g, "1m").replace(/\$\w+/g, "x");
    const tree = parser.parse(q);
    let err = null;
    tree.iterate({ enter: (n) => { if (n.type.isError && !err) err = n.from; } });
    if (err !== null) { bad++; console.log(`SYNTAX ${e.where}: ${e.expr} (at ${err})`); }
  }
}
console.log(`logql: ${checked} queries checked, ${bad} bad`);
process.exit(bad ? 1 : 0);

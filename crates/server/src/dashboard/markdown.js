// The receipts' Markdown, rendered safely.

import { h } from "./dom.js";

// A small Markdown renderer for the receipts: headings, paragraphs, lists, tables,
// code blocks, inline code, bold and images. It builds DOM nodes; every piece of text
// goes in as text. `image(target, alt)` gives the node for an image, or null to show
// its alt text instead.
export function markdown(source, image = () => null) {
  const out = document.createDocumentFragment();
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const isTableRule = (line) => /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(line);
  const startsBlock = (line) => /^(#{1,6}\s|```|\s*[-*]\s|\s*\d+\.\s|>)/.test(line) || /^\s*\|/.test(line);
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (/^\s*$/.test(line)) {
      i++;
    } else if (/^```/.test(line)) {
      const code = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]); i++) code.push(lines[i]);
      i++;
      out.append(h("pre", {}, h("code", { text: code.join("\n") })));
    } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      out.append(h(`h${m[1].length}`, {}, inline(image, m[2])));
      i++;
    } else if (/^\s*\|/.test(line) && i + 1 < lines.length && isTableRule(lines[i + 1])) {
      const head = cells(line);
      const rows = [];
      for (i += 2; i < lines.length && /^\s*\|/.test(lines[i]); i++) rows.push(cells(lines[i]));
      const headed = head.some((c) => c.trim());
      out.append(h("div", { class: "table-wrap" }, h("table", {},
        headed ? h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, inline(image, c))))) : null,
        h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, inline(image, c)))))))));
    } else if (/^\s*([-*]|\d+\.)\s+/.test(line)) {
      const ordered = /^\s*\d+\./.test(line);
      const items = [];
      for (; i < lines.length && /^\s*([-*]|\d+\.)\s+/.test(lines[i]); i++) {
        items.push(h("li", {}, inline(image, lines[i].replace(/^\s*([-*]|\d+\.)\s+/, ""))));
      }
      out.append(h(ordered ? "ol" : "ul", {}, items));
    } else if (/^>/.test(line)) {
      const quoted = [];
      for (; i < lines.length && /^>/.test(lines[i]); i++) quoted.push(lines[i].replace(/^>\s?/, ""));
      out.append(h("blockquote", {}, inline(image, quoted.join(" "))));
    } else {
      const para = [];
      for (; i < lines.length && !/^\s*$/.test(lines[i]) && (!para.length || !startsBlock(lines[i])); i++) para.push(lines[i]);
      out.append(h("p", {}, inline(image, para.join(" "))));
    }
  }
  return out;
}

// A table row's cells; `\|` is a pipe inside a cell.
function cells(row) {
  const inner = row.trim().replace(/^\|/, "").replace(/(?<!\\)\|$/, "");
  return inner.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

function inline(image, text) {
  const nodes = [];
  const pattern = /(`+)([\s\S]*?)\1|\*\*([^*]+)\*\*|!\[([^\]]*)\]\(([^)\s]+)\)/g;
  let at = 0;
  let m;
  while ((m = pattern.exec(text))) {
    if (m.index > at) nodes.push(text.slice(at, m.index));
    if (m[2] != null) nodes.push(h("code", { text: m[2] }));
    else if (m[3] != null) nodes.push(h("strong", { text: m[3] }));
    else nodes.push(image(m[5], m[4]) || h("em", { text: m[4] || m[5] }));
    at = pattern.lastIndex;
  }
  if (at < text.length) nodes.push(text.slice(at));
  return nodes;
}

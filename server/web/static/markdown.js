// A tiny, safe Markdown renderer: the text is HTML-escaped first, then code blocks, inline code, bold,
// lists, links (http/https only) and line breaks are turned into markup. Nothing a model writes can
// become a tag or an attribute of its own.

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function inline(escaped) {
  // Inline code first, so nothing inside it is read as bold or a link.
  const codes = [];
  let out = escaped.replace(/`([^`\n]+)`/g, (_, code) => {
    codes.push(code);
    return `\u0000${codes.length - 1}\u0000`;
  });
  out = out.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>");
  out = out.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g,
    (_, label, url) => `<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`);
  return out.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

function blocks(escaped) {
  const html = [];
  let list = null;
  let para = [];
  const flushPara = () => {
    if (para.length) html.push(`<p>${para.map(inline).join("<br>")}</p>`);
    para = [];
  };
  const flushList = () => {
    if (list) html.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(i)}</li>`).join("")}</${list.tag}>`);
    list = null;
  };
  for (const line of escaped.split("\n")) {
    const bullet = line.match(/^\s*[-*]\s+(.*)$/);
    const numbered = line.match(/^\s*\d+[.)]\s+(.*)$/);
    const item = bullet || numbered;
    if (item) {
      flushPara();
      const tag = bullet ? "ul" : "ol";
      if (list && list.tag !== tag) flushList();
      list = list || {tag, items: []};
      list.items.push(item[1]);
    } else if (!line.trim()) {
      flushPara();
      flushList();
    } else {
      flushList();
      para.push(line);
    }
  }
  flushPara();
  flushList();
  return html.join("");
}

export function renderMarkdown(text) {
  const escaped = escapeHtml(text || "");
  const parts = escaped.split(/```/);
  // Even parts are prose, odd ones code (an unclosed fence while streaming is code until the end).
  return parts.map((part, i) => {
    if (i % 2 === 0) return blocks(part);
    const newline = part.indexOf("\n");
    const lang = newline > 0 ? part.slice(0, newline).trim() : "";
    const code = newline >= 0 && /^[\w+-]*$/.test(lang) ? part.slice(newline + 1) : part;
    return `<pre><code${lang ? ` data-lang="${lang}"` : ""}>${code.replace(/\n$/, "")}</code></pre>`;
  }).join("");
}

// Building the page with DOM calls only: no markup parsed from strings, no inline handlers
// or styles (the Content-Security-Policy forbids them, and text from the
// API is never parsed as markup).

const SVG = 'http://www.w3.org/2000/svg';

function build(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/// An HTML element: el('p', {class: 'x'}, 'text', child).
export function el(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/// An SVG element.
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

/// A message box: kind is 'error', 'ok' or 'empty'.
export function note(kind, ...children) {
  return el('div', { class: `note ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

/// Replaces a node's children.
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

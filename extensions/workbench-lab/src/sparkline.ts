/**
 * A tiny inline SVG sparkline; no charting library for a 60x16 picture.
 */
const SVG_NS = 'http://www.w3.org/2000/svg';

export function sparkline(values: number[], width = 64, height = 16): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'wb-sparkline');
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('aria-hidden', 'true');
  updateSparkline(svg, values);
  return svg;
}

/** Redraw in place so a poll does not rebuild the row's DOM. */
export function updateSparkline(svg: SVGSVGElement, values: number[]): void {
  const width = Number(svg.getAttribute('width'));
  const height = Number(svg.getAttribute('height'));
  while (svg.firstChild) {
    svg.removeChild(svg.firstChild);
  }
  if (values.length < 2) {
    // Not a rate yet (one sample): a base line keeps the row's layout steady.
    const base = document.createElementNS(SVG_NS, 'line');
    base.setAttribute('x1', '0');
    base.setAttribute('x2', String(width));
    base.setAttribute('y1', String(height - 0.5));
    base.setAttribute('y2', String(height - 0.5));
    base.setAttribute('stroke-dasharray', '2 2');
    svg.appendChild(base);
    return;
  }
  const max = Math.max(...values, 1e-9);
  const step = width / (values.length - 1);
  // Scaled from zero, so a steady stream is a filled band and an idle one a flat base line.
  const coords = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`);
  const area = document.createElementNS(SVG_NS, 'polygon');
  area.setAttribute('points', `0,${height} ${coords.join(' ')} ${width},${height}`);
  area.setAttribute('class', 'wb-sparkline-area');
  const line = document.createElementNS(SVG_NS, 'polyline');
  line.setAttribute('points', coords.join(' '));
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke-width', '1.5');
  svg.append(area, line);
}

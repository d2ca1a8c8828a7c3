// The exchanges' decimal strings, compared and divided exactly (BigInt), never through a float: the page shows the
// strings as they came, and what it works out from them (a direction, a spread in bps) is exact too.
const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

const placesOf = (text) => (DECIMAL.exec(text)?.[2] ?? "").length;

// "30241.9" at 3 places -> 30241900n; null for anything that is not a plain decimal string.
function scaled(text, places) {
  const match = DECIMAL.exec(text);
  return match ? BigInt(match[1] + (match[2] ?? "").padEnd(places, "0")) : null;
}

// -1, 0 or 1 as a is below, equal to or above b; null when either is not a decimal string.
export function compareDecimal(a, b) {
  const places = Math.max(placesOf(a), placesOf(b));
  const x = scaled(a, places), y = scaled(b, places);
  if (x === null || y === null) return null;
  return x < y ? -1 : x > y ? 1 : 0;
}

// The spread of a bid and an ask in basis points of their mid, (ask - bid) / ((ask + bid) / 2) x 10 000, as a string
// with 2 decimals (rounded half to even, as the server's Decimal spread row); null without both prices.
export function spreadBps(bid, ask) {
  if (bid == null || ask == null) return null;
  const places = Math.max(placesOf(bid), placesOf(ask));
  const b = scaled(bid, places), a = scaled(ask, places);
  if (b === null || a === null || a + b === 0n) return null;
  const numerator = (a - b) * 2_000_000n; // x 2 (the mid) x 10 000 (bps) x 100 (two decimals)
  const sum = a + b;
  let hundredths = numerator / sum;
  const rest = numerator % sum;
  const twice = 2n * (rest < 0n ? -rest : rest);
  if (twice > sum || (twice === sum && hundredths % 2n !== 0n)) hundredths += numerator < 0n ? -1n : 1n;
  const negative = hundredths < 0n;
  const size = negative ? -hundredths : hundredths;
  return `${negative ? "-" : ""}${size / 100n}.${String(size % 100n).padStart(2, "0")}`;
}

// "30241.9" -> ["30241", ".9"]; "30242" -> ["30242", ""]: the two halves the page lines up on the decimal point.
export function decimalHalves(text) {
  const point = text.indexOf(".");
  return point < 0 ? [text, ""] : [text.slice(0, point), text.slice(point)];
}

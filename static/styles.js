// What the page's stylesheets must not hold, for speed: a rule whose subject is "any element after a sibling"
// (Bootstrap 5.3 reboot's `legend + *`). With such a rule, Chrome re-styles every row of a list whenever a row is put
// on top of it: at 20 panels that was 5,000-10,000 elements a frame instead of the few hundred new ones (trace,
// bench/RESULTS.md "The page's long tasks"). The page has no <legend>, so the rule never applied to anything here.
const ANY_AFTER_SIBLING = /[+~]\s*\*$/;

// Deletes every such rule from the page's same-origin stylesheets; returns the selectors dropped.
export function dropSiblingWildcards(sheets = document.styleSheets) {
  const dropped = [];
  const walk = (rules, owner) => {
    for (let i = rules.length - 1; i >= 0; i--) {
      const rule = rules[i];
      if (rule.selectorText === undefined && rule.cssRules) walk(rule.cssRules, rule); // @media and the like
      else if (rule.selectorText && rule.selectorText.split(",").some((s) => ANY_AFTER_SIBLING.test(s.trim()))) {
        dropped.push(rule.selectorText);
        owner.deleteRule(i);
      }
    }
  };
  for (const sheet of sheets) {
    try { walk(sheet.cssRules, sheet); } catch (_) { /* another origin's sheet: not ours to read */ }
  }
  return dropped;
}

// One look at the notebook page while it runs (evaluated by notebook_page.py every ~100 ms).
// Each live element gets a stable id the first time it is seen, so growth is followed on the same
// element (updated in place), not on whatever element happens to come first.
// Points are counted as plotly counts them: `_fullData[i]._length` is the number of points plotly
// drew for trace i (it decodes typed-array specs, while `data[i].x` may still be a base64 spec).
() => {
  const seen = (window.__streamscopeSeen ??= { ids: new WeakMap(), next: 0 });
  const idOf = (el) => {
    if (!seen.ids.has(el)) seen.ids.set(el, seen.next++);
    return seen.ids.get(el);
  };
  const graphOf = (el) => (el.matches('.js-plotly-plot') ? el : el.querySelector('.js-plotly-plot'));
  const points = (el) => {
    const graph = graphOf(el);
    if (!graph) return -1;
    const traces = graph._fullData ?? graph.data ?? [];
    return traces.reduce((n, t) => n + (t._length ?? t.x?.length ?? t.y?.length ?? 0), 0);
  };
  const all = (selector) => [...document.querySelectorAll(`.jp-Notebook ${selector}`)];
  return {
    prompts: all('.jp-CodeCell .jp-InputArea-prompt').map((el) => el.textContent.trim()),
    kernel: document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status ?? null,
    live: all('.streamscope-live').length,
    charts: all('.streamscope-live-chart').map((el) => [idOf(el), points(el)]),
    texts: all('.streamscope-live-text').map((el) => [idOf(el), el.textContent.length]),
  };
}

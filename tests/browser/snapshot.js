// One look at the notebook page while it runs. notebook_page.py calls it from Python to follow the
// run, and from a timer inside the page (every 50 ms) to record each state the page reaches even
// when the page is too busy to answer Python quickly.
// Each live element gets a stable id the first time it is seen, so growth is followed on the same
// element (updated in place), not on whatever element happens to come first; `running` says whether
// a cell was still running or queued (prompt [*]) at that moment.
// A chart's size is the number of points in its longest trace (the stream's; the others, such as a
// baseline or a marker line, have a few fixed points), counted as plotly counts them:
// `_fullData[i]._length` is what plotly drew for trace i (it decodes typed-array specs, while
// `data[i].x` may still be a base64 spec).
() => {
  const seen = (window.__streamscopeSeen ??= { ids: new WeakMap(), next: 0 });
  const idOf = (el) => {
    if (!seen.ids.has(el)) seen.ids.set(el, seen.next++);
    return seen.ids.get(el);
  };
  const points = (el) => {
    const graph = el.matches('.js-plotly-plot') ? el : el.querySelector('.js-plotly-plot');
    if (!graph) return -1;
    const traces = graph._fullData ?? graph.data ?? [];
    return Math.max(0, ...traces.map((t) => t._length ?? t.x?.length ?? t.y?.length ?? 0));
  };
  // A race chart's lines, each counted as above: which of them grew at the same time.
  const lengths = (el) => {
    const graph = el.matches('.js-plotly-plot') ? el : el.querySelector('.js-plotly-plot');
    const traces = graph ? graph._fullData ?? graph.data ?? [] : [];
    return traces.map((t) => t._length ?? t.x?.length ?? t.y?.length ?? 0);
  };
  const all = (selector) => [...document.querySelectorAll(`.jp-Notebook ${selector}`)];
  const prompts = all('.jp-CodeCell .jp-InputArea-prompt').map((el) => el.textContent.trim());
  const running = prompts.some((prompt) => prompt.includes('*'));
  return {
    t: performance.now() / 1000,
    prompts,
    kernel: document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status ?? null,
    live: all('.streamscope-live').length,
    charts: all('.streamscope-live-chart').map((el) => [idOf(el), points(el), running]),
    texts: all('.streamscope-live-text').map((el) => [idOf(el), el.textContent.length, running]),
    races: all('.streamscope-race-chart').map((el) => [idOf(el), lengths(el), running]),
  };
}

// What a user would see as broken once the run is over, per code cell (numbered from 1 in page
// order, with its prompt), and any dialog left open on the page.
() => {
  const problems = [];
  const clip = (text) => text.trim().replace(/\s+\n/g, '\n').slice(0, 1500);
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
  cells.forEach((cell, index) => {
    const prompt = cell.querySelector('.jp-InputArea-prompt')?.textContent.trim() ?? '';
    const where = `code cell ${index + 1} (${prompt.replace(/:$/, '')})`;
    if (prompt === '[ ]:') {
      problems.push(`${where}: not run (Run All stops at the first cell that raises)`);
    }
    const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')];
    // Tracebacks and stderr both render with this MIME type.
    for (const out of outputs.filter((o) => o.dataset.mimeType === 'application/vnd.jupyter.stderr')) {
      problems.push(`${where} shows an error/stderr output:\n${clip(out.textContent)}`);
    }
    // ipywidgets' renderer (inside the output's panel) shows these as its bare text when a view
    // cannot be made, or is not made yet.
    for (const out of outputs) {
      const stuck = [out, ...out.querySelectorAll('*')].find(
        (el) => el.childElementCount === 0 && /^(Error displaying widget|Loading widget)/.test(el.textContent),
      );
      if (stuck) problems.push(`${where}: widget not rendered, the page shows "${clip(stuck.textContent)}"`);
    }
    // ipywidgets shows this icon when a widget's JavaScript cannot be loaded; a click on it shows
    // "[Open Browser Console ...]", the message, then the stack.
    for (const error of cell.querySelectorAll('.jupyter-widgets-error-widget')) {
      error.parentElement?.click();
      const message = error.querySelector('pre')?.textContent.trim().split('\n')[1] ?? '';
      problems.push(`${where}: a widget failed to load, the page shows ipywidgets' error widget: ${message}`);
    }
    for (const box of cell.querySelectorAll('.streamscope-live')) {
      if (!box.querySelector('.streamscope-live-chart .main-svg')) {
        problems.push(`${where}: the live view shows no chart (its plotly FigureWidget did not render)`);
      }
      if (!box.querySelector('.streamscope-live-text')) {
        problems.push(`${where}: the live view shows no streamed text`);
      }
    }
    // A chart's static copy (for front ends without widgets) is hidden where the widget renders.
    if (cell.querySelector('.streamscope-static-copy-follows')) {
      const shown = [...cell.querySelectorAll('.jp-RenderedImage')].filter((image) => image.offsetParent !== null);
      if (shown.length) problems.push(`${where}: the chart's static copy shows beside the live chart`);
    }
  });
  for (const dialog of document.querySelectorAll('.jp-Dialog')) {
    problems.push(`a dialog is open on the page: ${clip(dialog.textContent).slice(0, 300)}`);
  }
  return problems;
}

/**
 * Cell actions: the code the sidebar writes into a notebook.
 */
import { Notebook, NotebookActions } from '@jupyterlab/notebook';

const IMPORT_RE = /^\s*import\s+workbench\s+as\s+wb\b/m;

/** The source of a tap cell; the import is added only when no cell has it yet. */
export function tapCellSource(topic: string, withImport: boolean): string {
  // Kafka topic names are [A-Za-z0-9._-], so a JSON string is a valid Python literal.
  const body = `tap = wb.tap(${JSON.stringify(topic)})\ntap`;
  return withImport ? `import workbench as wb\n${body}` : body;
}

/** True when some code cell of the notebook already imports workbench as wb. */
export function hasWorkbenchImport(notebook: Notebook): boolean {
  return notebook.widgets.some(
    cell => cell.model.type === 'code' && IMPORT_RE.test(cell.model.sharedModel.getSource())
  );
}

/** The source of a feature-preview cell: the registered set, previewed on a fresh tap of its source. */
export function featurePreviewSource(name: string, withImport: boolean): string {
  const variable = /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : 'feature_set';
  const body =
    `from workbench.features.sets import load_set\n\n` +
    `${variable} = load_set(${JSON.stringify(name)})\n` +
    `${variable}.preview(wb.tap(${variable}.features[0].source, since="10m"), duration_s=10)`;
  return withImport ? `import workbench as wb\n${body}` : body;
}

/** Insert a tap cell for `topic`. */
export function insertTapCell(notebook: Notebook, topic: string): void {
  insertCell(notebook, tapCellSource(topic, !hasWorkbenchImport(notebook)));
}

/** Insert a live preview cell for the registered feature set `name`. */
export function insertFeaturePreviewCell(notebook: Notebook, name: string): void {
  insertCell(notebook, featurePreviewSource(name, !hasWorkbenchImport(notebook)));
}

/**
 * Put a cell below the active cell (or into it, when it is an empty code
 * cell, so a fresh notebook does not start with a blank cell) and select it.
 */
function insertCell(notebook: Notebook, source: string): void {
  const active = notebook.activeCell;
  const reuse = active !== null && active.model.type === 'code' && active.model.sharedModel.getSource().trim() === '';
  if (!reuse) {
    NotebookActions.insertBelow(notebook);
  }
  const cell = notebook.activeCell;
  if (cell === null) {
    return;
  }
  cell.model.sharedModel.setSource(source);
  // Command mode on the new cell: Shift+Enter runs it straight away.
  notebook.mode = 'command';
  notebook.activate();
}

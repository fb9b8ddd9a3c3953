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

/**
 * Put a tap cell below the active cell (or into it, when it is an empty code
 * cell, so a fresh notebook does not start with a blank cell) and select it.
 */
export function insertTapCell(notebook: Notebook, topic: string): void {
  const source = tapCellSource(topic, !hasWorkbenchImport(notebook));
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

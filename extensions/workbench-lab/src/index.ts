/**
 * Workbench for JupyterLab: a left sidebar with live streams, feature sets and
 * evaluations, and commands that write Workbench cells into notebooks.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { insertTapCell } from './cells';
import { WorkbenchSidebar } from './sidebar';

import iconSvg from '../style/workbench.svg';

const workbenchIcon = new LabIcon({ name: 'workbench-lab:icon', svgstr: iconSvg });

namespace CommandIDs {
  export const insertTap = 'workbench:insert-tap-cell';
  export const refresh = 'workbench:refresh';
}

/** The kernelspec `workbench kernel install` writes; new notebooks from the sidebar use it. */
const KERNEL_NAME = 'workbench';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'workbench-lab:sidebar',
  description: 'Workbench sidebar: live streams, feature sets and evaluations.',
  autoStart: true,
  requires: [ILabShell, INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    const sidebar = new WorkbenchSidebar({
      onInsertTap: topic => void app.commands.execute(CommandIDs.insertTap, { topic })
    });
    sidebar.title.icon = workbenchIcon;
    shell.add(sidebar, 'left', { rank: 150 });

    app.commands.addCommand(CommandIDs.insertTap, {
      label: args => (args.topic ? `Insert Tap Cell for ${args.topic}` : 'Insert Tap Cell'),
      caption: 'Insert `tap = wb.tap(topic)` into the active notebook',
      execute: async args => {
        const topic = String(args.topic ?? '');
        if (topic === '') {
          return;
        }
        const panel = await notebookForInsert(app, tracker);
        shell.activateById(panel.id);
        insertTapCell(panel.content, topic);
      }
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Workbench Sidebar',
      execute: () => sidebar.refresh()
    });
    palette?.addItem({ command: CommandIDs.refresh, category: 'Workbench' });
  }
};

/** The notebook the user last worked in, or a new one on the Workbench kernel. */
async function notebookForInsert(app: JupyterFrontEnd, tracker: INotebookTracker): Promise<NotebookPanel> {
  const current = tracker.currentWidget;
  if (current !== null) {
    return current;
  }
  const panel = (await app.commands.execute('notebook:create-new', {
    kernelName: KERNEL_NAME
  })) as NotebookPanel;
  await panel.context.ready;
  return panel;
}

export default plugin;

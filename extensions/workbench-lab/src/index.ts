/**
 * Workbench for JupyterLab: a left sidebar with live streams, feature sets and
 * evaluations, and commands that write Workbench cells into notebooks.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IPromotionReply, IReviewReply, postJSON } from './api';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { insertFeaturePreviewCell, insertTapCell } from './cells';
import { WorkbenchSidebar } from './sidebar';

import iconSvg from '../style/workbench.svg';

const workbenchIcon = new LabIcon({ name: 'workbench-lab:icon', svgstr: iconSvg });

namespace CommandIDs {
  export const insertTap = 'workbench:insert-tap-cell';
  export const refresh = 'workbench:refresh';
  export const insertPreview = 'workbench:insert-feature-preview-cell';
  export const review = 'workbench:open-review-app';
  export const promote = 'workbench:promote';
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
      onInsertTap: topic => void app.commands.execute(CommandIDs.insertTap, { topic }),
      onInsertPreview: name => void app.commands.execute(CommandIDs.insertPreview, { name }),
      onReview: name => void app.commands.execute(CommandIDs.review, { name }),
      onPromote: name => void app.commands.execute(CommandIDs.promote, { name })
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
    app.commands.addCommand(CommandIDs.insertPreview, {
      label: args => `Insert Feature Preview Cell${args.name ? ` for ${args.name}` : ''}`,
      execute: async args => {
        const name = String(args.name ?? '');
        if (name === '') {
          return;
        }
        const panel = await notebookForInsert(app, tracker);
        shell.activateById(panel.id);
        insertFeaturePreviewCell(panel.content, name);
      }
    });
    app.commands.addCommand(CommandIDs.review, {
      label: args => `Open Review App${args.name ? ` for ${args.name}` : ''}`,
      execute: async args => {
        const name = String(args.name ?? '');
        // Open the tab now, inside the click: a window opened after an await is a blocked pop-up.
        const tab = window.open('', '_blank');
        const id = Notification.emit(`Starting the review app for ${name}…`, 'in-progress', { autoClose: false });
        try {
          const reply = await postJSON<IReviewReply>('review', { feature_set: name });
          Notification.update({ id, message: `Review app for ${name}: ${reply.url}`, type: 'success', autoClose: 5000 });
          if (tab !== null) {
            tab.location.href = reply.url;
          } else {
            window.open(reply.url, '_blank');
          }
          return reply.url;
        } catch (err) {
          tab?.close();
          Notification.update({ id, message: `Review app for ${name}: ${(err as Error).message}`, type: 'error' });
          return null;
        }
      }
    });
    app.commands.addCommand(CommandIDs.promote, {
      label: args => `Promote${args.name ? ` ${args.name}` : ''}…`,
      execute: async args => {
        const name = String(args.name ?? '');
        await promoteWithConfirmation(name);
        await sidebar.refresh();
      }
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Workbench Sidebar',
      execute: () => sidebar.refresh()
    });
    palette?.addItem({ command: CommandIDs.refresh, category: 'Workbench' });
  }
};

/**
 * A dry run first (gate and plan, nothing changes); the user confirms in a
 * dialog that shows both, and only then does the server promote for real.
 */
async function promoteWithConfirmation(name: string): Promise<void> {
  let planned: IPromotionReply;
  try {
    planned = await postJSON<IPromotionReply>('promote', { feature_set: name, confirm: false });
  } catch (err) {
    await showErrorMessage(`Promote ${name}`, (err as Error).message);
    return;
  }
  const canPromote = planned.status === 'planned';
  const choice = await showDialog({
    title: `Promote ${name} v${planned.version}?`,
    body: promotionBody(planned),
    buttons: canPromote
      ? [Dialog.cancelButton(), Dialog.okButton({ label: `Promote v${planned.version}`, ariaLabel: 'Confirm promotion' })]
      : [Dialog.cancelButton({ label: 'Close' })]
  });
  if (!canPromote || !choice.button.accept) {
    return;
  }
  const id = Notification.emit(`Promoting ${name} v${planned.version}…`, 'in-progress', { autoClose: false });
  try {
    const done = await postJSON<IPromotionReply>('promote', { feature_set: name, confirm: true });
    Notification.update({
      id,
      message: done.summary,
      type: done.status === 'promoted' ? 'success' : 'warning',
      autoClose: 10000
    });
  } catch (err) {
    Notification.update({ id, message: `Promote ${name}: ${(err as Error).message}`, type: 'error' });
  }
}

function promotionBody(reply: IPromotionReply): Widget {
  const body = new Widget();
  body.addClass('wb-promotion');
  const gate = document.createElement('p');
  gate.className = `wb-gate ${reply.gate.ok ? 'wb-mod-open' : 'wb-mod-closed'}`;
  gate.textContent = reply.gate.ok
    ? `Gate open: evaluation ${reply.gate.evaluation_id}, skew check ${reply.gate.skew_id} (0 mismatches).`
    : `Gate closed: ${reply.gate.reasons.join('; ')}`;
  const summary = document.createElement('p');
  summary.textContent = reply.summary;
  body.node.append(gate, summary);
  if (reply.plan !== null) {
    const plan = document.createElement('pre');
    plan.className = 'wb-plan';
    plan.textContent = reply.plan;
    body.node.appendChild(plan);
  }
  return body;
}

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

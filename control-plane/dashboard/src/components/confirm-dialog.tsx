// A confirmation as a modal <dialog>: nothing else on the page can be clicked until the operator
// confirms or cancels (Escape cancels). Not window.confirm, which stops the page's scripts (and
// its live feed) while it is open and is no part of the page a browser test can read.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export interface ConfirmDialogProps {
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  /** Styles the confirm button as a warning (abort, roll back). */
  destructive?: boolean;
  /** The confirmed request is in flight: both buttons wait. */
  busy?: boolean;
  onConfirm(): void;
  onCancel(): void;
}

/** Opens as a modal when rendered; render it only while a confirmation is wanted. */
export function ConfirmDialog({ title, children, confirmLabel, destructive = false, busy = false, onConfirm, onCancel }: ConfirmDialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    if (!dialog.open) dialog.showModal();
    return () => dialog.close();
  }, []);
  const escape = (event: Event): void => {
    // The browser would close the dialog itself; the parent decides, so the state stays true.
    event.preventDefault();
    if (!busy) onCancel();
  };
  return (
    <dialog ref={ref} class="confirm" data-testid="confirm-dialog" aria-labelledby="confirm-title" onCancel={escape}>
      <h2 id="confirm-title">{title}</h2>
      <div class="confirm-body">{children}</div>
      <div class="confirm-buttons">
        <button type="button" class="button" onClick={onCancel} disabled={busy} data-testid="confirm-cancel" autofocus>
          Cancel
        </button>
        <button type="button" class={`button ${destructive ? 'button-danger' : 'button-primary'}`} onClick={onConfirm} disabled={busy} data-testid="confirm-ok">
          {busy ? 'Working…' : confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

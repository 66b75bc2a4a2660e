"""The SAMP part: send the selection or a labelled subset to TOPCAT / Aladin, follow the focused object there, and
take a row selection made in TOPCAT back as the app's selection.

Nothing connects at start-up: the part registers with a hub only when the user presses Connect or Send, so the
page loads as fast without a hub as with one. The hub is the one on the machine that runs the app (its ``SAMP_HUB``
or ``~/.samp``): for ``explorer serve`` on a laptop, the TOPCAT or Aladin running on that laptop.

Messages from other applications arrive on the SAMP client's own thread; they reach the :class:`Session` only
through the session's event loop (:func:`explorer.app.background.call_soon`). Sending waits for each receiver to
confirm it loaded the table, so when served it runs on a thread (:func:`~explorer.app.background.run_in_background`).
"""

from __future__ import annotations

import contextlib
import html
import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
import panel as pn
import param

from explorer.app.background import batch_callback, call_soon, current_document, run_in_background
from explorer.app.data import AppData
from explorer.errors import DataError, ExplorerError
from explorer.session import Session

if TYPE_CHECKING:
    from explorer.samp import SampBridge, SentTable

log = logging.getLogger(__name__)

NOT_CONNECTED = "Not connected to a SAMP hub."
NO_HUB_HINT = "Start TOPCAT or Aladin on this machine (each runs a SAMP hub), then press Connect."


class SampPanel(pn.viewable.Viewer):
    """Talk to TOPCAT and Aladin over SAMP: send objects as a VOTable, highlight and point at the focused object,
    and receive row selections.

    Parameters
    ----------
    session : Session
    data : AppData
    background : bool, optional
        Send tables on a thread (default: only when served, where waiting would block the page).
    timeout : float
        Seconds to wait for each receiver to confirm it loaded a table.
    name : str
        The name TOPCAT and Aladin show for this app.

    Examples
    --------
    >>> samp = SampPanel(session, data)      # doctest: +SKIP
    >>> samp.connect()                       # False, with a message, when no hub runs
    >>> samp.send_selection()                # the session's selection, as a table in TOPCAT
    >>> samp.send_label("anomaly")           # every object labelled "anomaly"
    """

    session = param.ClassSelector(class_=Session)
    connected = param.Boolean(default=False, doc="Whether this part is registered with a SAMP hub.")
    status = param.String(default=NOT_CONNECTED, doc="What the connection is doing, in words.")
    label = param.Selector(default=None, objects=[], allow_None=True, doc="The label 'Send label' sends.")
    follow_focus = param.Boolean(
        default=True, doc="When the focused object changes, highlight its row and point Aladin at it."
    )
    sending = param.Boolean(default=False, doc="A table is on its way.")
    n_sent = param.Integer(default=0, doc="Objects in the last table sent.")
    n_received = param.Integer(default=0, doc="Row selections received from other applications.")

    def __init__(
        self,
        session: Session,
        data: AppData,
        background: bool | None = None,
        timeout: float = 10.0,
        name: str = "astro-embedding-explorer",
        **params,
    ):
        super().__init__(session=session, **params)
        self.data = data
        self.background = background
        self.timeout = float(timeout)
        self.client_name = name
        self.bridge: SampBridge | None = None
        self.last_sent: SentTable | None = None
        self._doc = None
        self._cleanup_registered = False
        self._connect = pn.widgets.Button(label="Connect", width=95, description="Register with the SAMP hub")
        self._connect.on_click(batch_callback(lambda _e: self.toggle()))
        self._send_sel = pn.widgets.Button(
            label="Send selection", width=120, color="primary", description="Send the selection as a table"
        )
        self._send_sel.on_click(batch_callback(lambda _e: self.send_selection()))
        self._label = pn.widgets.Select.from_param(self.param.label, name="", width=120)
        self._send_label = pn.widgets.Button(
            label="Send label", width=95, description="Send every object with the chosen label"
        )
        self._send_label.on_click(batch_callback(lambda _e: self.send_label()))
        self._follow = pn.widgets.Checkbox.from_param(self.param.follow_focus, name="follow focus", width=105)
        self._status = pn.pane.HTML("", margin=(8, 5), sizing_mode="stretch_width")
        self._refresh_labels()
        self._show_status()

    # ------------------------------------------------------------------ connection
    def connect(self) -> bool:
        """Register with the hub (no-op when connected); False, with a message saying what to do, if none runs."""
        if self.connected and self.bridge is not None and self.bridge.connected:
            return True
        if self.bridge is not None:  # a connection the hub dropped
            with contextlib.suppress(Exception):
                self.bridge.close()
            self.bridge = None
        from explorer.samp import SampBridge

        bridge = SampBridge(self.data.ws, name=self.client_name, timeout=self.timeout)
        try:
            bridge.connect()
        except ExplorerError as err:
            bridge.close()
            log.info("SAMP connect failed: %s", err)
            self._set_status(False, f"No SAMP hub is running. {NO_HUB_HINT}")
            return False
        except Exception as err:  # noqa: BLE001 - a broken hub or SAMP library: a message, never a traceback
            bridge.close()
            log.warning("SAMP connect failed: %s", err, exc_info=True)
            self._set_status(False, f"Could not connect to the SAMP hub ({err}). {NO_HUB_HINT}")
            return False
        self._doc = current_document()
        bridge.on_selection(self._received)
        self.bridge = bridge
        if self._doc is not None and not self._cleanup_registered:
            with contextlib.suppress(Exception):  # unregister when the browser tab goes away
                pn.state.on_session_destroyed(lambda _ctx: self.disconnect())
                self._cleanup_registered = True
        self._set_status(True, f"Connected to the SAMP hub{self._others()}.")
        return True

    def disconnect(self) -> None:
        """Unregister from the hub (tables already sent stay in TOPCAT)."""
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.close()
        self.last_sent = None
        self._set_status(False, NOT_CONNECTED)

    def toggle(self) -> None:
        """Connect when disconnected, disconnect when connected (the Connect button)."""
        if self.connected:
            self.disconnect()
        else:
            self.connect()

    def _others(self) -> str:
        try:
            names = sorted(set(self.bridge.clients().values())) if self.bridge is not None else []
        except Exception:  # noqa: BLE001 - only decoration for the status line
            return ""
        return f"; also there: {', '.join(names)}" if names else "; no other application yet"

    def _set_status(self, connected: bool, text: str) -> None:
        self.param.update(connected=connected, status=text)
        self.session.notify(text)

    def _lost(self, err: BaseException) -> None:
        """The hub stopped answering: forget the connection and say so."""
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            with contextlib.suppress(Exception):
                bridge.close()
        self._set_status(False, f"Lost the SAMP hub ({err}). {NO_HUB_HINT}")

    # ------------------------------------------------------------------ what to send
    @param.depends("session.labels_version", watch=True)
    def _refresh_labels(self) -> None:
        store = self.data.labels
        labels = [k for k, v in (store.counts() if store is not None else {}).items() if v]
        self.param.label.objects = labels
        self._label.options = labels
        if self.label not in labels:
            self.label = labels[0] if labels else None

    def label_ids(self, label: str) -> list[str]:
        """Ids of the objects currently labelled ``label``."""
        store = self.data.labels
        if store is None:
            return []
        current = store.current()
        return current.loc[current["label"] == label, "id"].astype(str).tolist()

    def send_selection(self) -> bool:
        """Send the session's selection to every application that loads tables; False (with a message) if not."""
        ids = [str(i) for i in self.session.selected_ids]
        if not ids:
            self.session.notify("Nothing to send over SAMP: select objects on the map first.")
            return False
        return self.send(ids, f"explorer selection ({len(ids):,})")

    def send_label(self, label: str | None = None) -> bool:
        """Send every object labelled ``label`` (default: the chosen one); False (with a message) if not."""
        label = label if label is not None else self.label
        if label is None:
            self.session.notify("Nothing to send over SAMP: no object has a label yet.")
            return False
        ids = self.label_ids(label)
        if not ids:
            self.session.notify(f"Nothing to send over SAMP: no object is labelled {label!r}.")
            return False
        return self.send(ids, f"explorer label {label} ({len(ids):,})")

    def send(self, ids: list[str], name: str) -> bool:
        """Send ``ids`` as one VOTable named ``name`` (connecting first if needed).

        Returns whether the table went out (when it runs in the background: whether it was started). The
        outcome, receivers or error, is the session's message.
        """
        if self.sending:
            self.session.notify("A SAMP table is still on its way; wait a moment.")
            return False
        if not self.connect():
            return False
        bridge = self.bridge
        background = self.background if self.background is not None else current_document() is not None
        self.sending = True

        def work():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                receivers = bridge.clients("table.load.votable")
                sent = bridge.send_table(ids, name=name)
            return sent, receivers, [str(w.message) for w in caught]

        if not background:
            try:
                result, error = work(), None
            except Exception as err:  # noqa: BLE001 - shown to the user by _sent
                result, error = None, err
            return self._sent(result, error)
        run_in_background(work, self._sent, name="explorer-samp-send")
        return True

    def _sent(self, result, error: BaseException | None) -> bool:
        """Report how a send went (runs where widgets may change); ``sending`` ends after the follow-up."""
        try:
            return self._report_sent(result, error)
        finally:
            self.sending = False

    def _report_sent(self, result, error: BaseException | None) -> bool:
        if error is not None:
            if isinstance(error, ExplorerError):
                self.session.notify(str(error))
            else:
                self._lost(error)
            return False
        sent, receivers, problems = result
        self.last_sent = sent
        self.n_sent = len(sent.ids)
        to = ", ".join(sorted(set(receivers.values())))
        text = f"Sent {len(sent.ids):,} objects over SAMP to {to}."
        if problems:
            text += " " + " ".join(problems)
        self.session.notify(text)
        if self.follow_focus and self.session.focused_id is not None:
            self.show_focus()
        return True

    # ------------------------------------------------------------------ following the focus
    @param.depends("session.focused_id", watch=True)
    def _focus_changed(self) -> None:
        if self.connected and self.follow_focus and self.session.focused_id is not None:
            self.show_focus()

    def show_focus(self, object_id: str | None = None) -> tuple[bool, bool]:
        """Highlight the focused object's row in the latest table holding it and point Aladin at its ra/dec.

        Returns ``(highlighted, pointed)``: no highlight for an object never sent, no pointing without a position.
        """
        object_id = object_id if object_id is not None else self.session.focused_id
        bridge = self.bridge
        if bridge is None or object_id is None:
            return False, False
        highlighted = pointed = False
        try:
            try:
                bridge.highlight(object_id)
                highlighted = True
            except DataError:  # not in a table sent from here: nothing to highlight
                pass
            position = self.position(object_id)
            if position is not None:
                bridge.point_at(*position)
                pointed = True
        except ExplorerError as err:
            self.session.notify(str(err))
        except Exception as err:  # noqa: BLE001 - the hub went away
            self._lost(err)
        return highlighted, pointed

    def position(self, object_id: str) -> tuple[float, float] | None:
        """``(ra, dec)`` of an object in degrees, or None when the catalogue has no valid position for it."""
        row = self.data.row(object_id)
        if row is None:
            return None
        try:
            ra, dec = float(row.get("ra")), float(row.get("dec"))
        except (TypeError, ValueError):
            return None
        return (ra, dec) if np.isfinite(ra) and np.isfinite(dec) else None

    # ------------------------------------------------------------------ receiving
    def _received(self, ids: list[str]) -> None:
        """A row selection from TOPCAT (runs on the SAMP thread): hand it to the session's event loop."""
        call_soon(self._doc, lambda: self.apply_selection(ids))

    def apply_selection(self, ids: list[str]) -> np.ndarray:
        """Make ``ids`` (a selection received over SAMP) the app's selection, undoably; unknown ids are dropped.

        ``n_received`` counts the selections handled, once each is in force.
        """
        ids = [str(i) for i in ids]
        known = self.data.catalog.contains(ids) if ids else np.zeros(0, bool)
        keep = [i for i, k in zip(ids, known, strict=True) if k]
        if not keep:
            self.session.notify(
                f"A SAMP selection of {len(ids)} rows named no object of this workspace; selection unchanged."
            )
            self.n_received += 1
            return self.session.selected_ids
        selected = self.session.select_ids(keep, mode="replace")
        dropped = len(ids) - len(keep)
        self.session.notify(
            f"{len(keep):,} objects selected from a SAMP application"
            + (f" ({dropped} unknown ids left out)." if dropped else ".")
        )
        self.n_received += 1
        return selected

    # ------------------------------------------------------------------ view
    @param.depends("connected", "status", "sending", watch=True)
    def _show_status(self) -> None:
        colour = "#2a8a3e" if self.connected else "#999"
        text = "Sending…" if self.sending else self.status
        self._status.object = (
            f"<small><span style='color:{colour}'>&#9679;</span> {html.escape(text)}</small>"
        )
        self._connect.label = "Disconnect" if self.connected else "Connect"
        for button in (self._send_sel, self._send_label):
            button.disabled = self.sending

    def __panel__(self):
        return pn.Row(
            pn.pane.HTML("<b>SAMP</b>", margin=(10, 5), width=45),
            self._connect,
            self._send_sel,
            self._label,
            self._send_label,
            self._follow,
            self._status,
            sizing_mode="stretch_width",
        )


__all__ = ["SampPanel"]

"""Who may change the server. On localhost (the default: .streamlit/config.toml binds 127.0.0.1) everyone
may. When the teacher shares the dashboard with a class (`--server.address 0.0.0.0`), visitors get a
read-only dashboard: every page that explains works, uploads and the webcam too, but launching, stopping,
resuming, evaluating and deleting jobs, writing into run folders and typing server paths are hidden until
the teacher enters the password on the Train page. The password comes from $FER_STUDIO_PASSWORD or
`teacher_password` in .streamlit/secrets.toml; it is compared in constant time, never shown, never put in
the URL, and held only as a flag in the teacher's own session."""
import hmac
import ipaddress
import os
import time

import streamlit as st

PASSWORD_ENV = "FER_STUDIO_PASSWORD"
_TEACHER = "_teacher_unlocked"
WRONG_PASSWORD_DELAY = 1.0  # seconds: guessing costs time, a typo does not


def shared() -> bool:
    """Whether other machines can reach this server: any address but a loopback one (no address at all means
    every interface)."""
    address = (st.get_option("server.address") or "").strip("[]")
    if address == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True


def teacher_password() -> str | None:
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    try:
        return st.secrets.get("teacher_password") or None
    except Exception:  # noqa: BLE001 - no secrets file, or an unreadable one: no password set
        return None


def may_change_server() -> bool:
    """True on localhost, and for the teacher's session once unlocked."""
    return not shared() or bool(st.session_state.get(_TEACHER))


def teacher_gate() -> bool:
    """The Train page's lock: True if this session may launch and manage jobs; otherwise it says why and, when
    a password is set, asks for it."""
    if not shared():
        return True
    if st.session_state.get(_TEACHER):
        left, right = st.columns([4, 1])
        left.caption("Teacher mode: this session may start, stop, resume, evaluate and delete jobs.")
        if right.button("Lock", key="teacher_lock", help="Back to the read-only view this class sees"):
            st.session_state.pop(_TEACHER, None)
            st.rerun()
        return True
    password = teacher_password()
    if not password:
        st.info(f"This dashboard is shared, so training is read-only here. To train from the browser, the "
                f"teacher sets a password ({PASSWORD_ENV}, or teacher_password in .streamlit/secrets.toml) and "
                "restarts the server.")
        return False
    with st.form("teacher_login"):
        st.caption("This dashboard is shared: jobs are read-only until the teacher unlocks this session.")
        given = st.text_input("Teacher password", type="password", key="teacher_password_input")
        unlock = st.form_submit_button("Unlock training")
    if unlock:
        if hmac.compare_digest(given.encode(), password.encode()):
            st.session_state[_TEACHER] = True
            st.session_state.pop("teacher_password_input", None)
            st.rerun()
        time.sleep(WRONG_PASSWORD_DELAY)
        st.error("Wrong password: training stays read-only.")
    return False

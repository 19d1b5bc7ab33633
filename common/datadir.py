"""Who may read the data folder: its owner only, or the owner and one group (CITYPIPE_DATA_GROUP).

Raw payloads, quarantined messages and the warehouse live under ``settings.home``; nothing there
is for other users of the machine. The ``citypipe`` command sets the process umask before doing
anything (children inherit it: the ingest writer, the Airflow runner, the embedded broker), so
every file and folder it creates is 0o600/0o700, or 0o640/0o750 with a data group; and it closes
the data folder itself (0o700, or 0o2750 owned by the group, whose set-group-id bit makes new
entries inherit the group), which also shuts others out of anything older inside it.
docs/operations.md states the policy.
"""

from __future__ import annotations

import grp
import logging
import os
import stat
from pathlib import Path

from common.settings import Settings

log = logging.getLogger(__name__)

OWNER_ONLY_UMASK = 0o077
GROUP_READ_UMASK = 0o027


class DataGroupError(ValueError):
    """CITYPIPE_DATA_GROUP names no group, or one the data folder cannot be given to."""


def data_umask(settings: Settings) -> int:
    return GROUP_READ_UMASK if settings.data_group else OWNER_ONLY_UMASK


def file_mode(settings: Settings) -> int:
    """Mode of a file created under the policy (for tools that set modes explicitly)."""
    return 0o666 & ~data_umask(settings)


def dir_mode(settings: Settings) -> int:
    return 0o777 & ~data_umask(settings)


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise DataGroupError(f"CITYPIPE_DATA_GROUP={name!r}: no such group") from None


def apply_data_policy(settings: Settings) -> None:
    """Set the process umask and close the data folder (if it exists and is ours)."""
    os.umask(data_umask(settings))
    gid = _group_id(settings.data_group) if settings.data_group else None
    home = Path(settings.home)
    try:
        st = home.stat()
    except FileNotFoundError:
        return  # created later under the umask; the group is set when it exists
    if st.st_uid != os.geteuid():
        if st.st_mode & 0o007:
            log.warning(
                "data folder %s is open to other users (mode %s) and not ours to change",
                home,
                stat.filemode(st.st_mode),
            )
        return
    mode = 0o700
    if gid is not None:
        if st.st_gid != gid:
            try:
                os.chown(home, -1, gid)
            except PermissionError:
                raise DataGroupError(
                    f"cannot give the data folder {home} to group {settings.data_group!r}:"
                    " this user is not a member of it"
                ) from None
        mode = 0o2750
    if stat.S_IMODE(st.st_mode) != mode:
        home.chmod(mode)

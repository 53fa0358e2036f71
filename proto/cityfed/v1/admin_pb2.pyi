from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_MODE_UNSPECIFIED: _ClassVar[IngestMode]
    INGEST_MODE_REPLACE: _ClassVar[IngestMode]
    INGEST_MODE_APPEND: _ClassVar[IngestMode]

class IngestPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_PHASE_UNSPECIFIED: _ClassVar[IngestPhase]
    INGEST_PHASE_READING: _ClassVar[IngestPhase]
    INGEST_PHASE_CHECKING: _ClassVar[IngestPhase]
    INGEST_PHASE_WRITING: _ClassVar[IngestPhase]
    INGEST_PHASE_ORDERING: _ClassVar[IngestPhase]
    INGEST_PHASE_COMMITTING: _ClassVar[IngestPhase]
INGEST_MODE_UNSPECIFIED: IngestMode
INGEST_MODE_REPLACE: IngestMode
INGEST_MODE_APPEND: IngestMode
INGEST_PHASE_UNSPECIFIED: IngestPhase
INGEST_PHASE_READING: IngestPhase
INGEST_PHASE_CHECKING: IngestPhase
INGEST_PHASE_WRITING: IngestPhase
INGEST_PHASE_ORDERING: IngestPhase
INGEST_PHASE_COMMITTING: IngestPhase

class IngestRequest(_message.Message):
    __slots__ = ("dataset", "path", "mode")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    path: str
    mode: IngestMode
    def __init__(self, dataset: _Optional[str] = ..., path: _Optional[str] = ..., mode: _Optional[_Union[IngestMode, str]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("rows_loaded", "row_count")
    ROWS_LOADED_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    rows_loaded: int
    row_count: int
    def __init__(self, rows_loaded: _Optional[int] = ..., row_count: _Optional[int] = ...) -> None: ...

class IngestWithProgressRequest(_message.Message):
    __slots__ = ("load",)
    LOAD_FIELD_NUMBER: _ClassVar[int]
    load: IngestRequest
    def __init__(self, load: _Optional[_Union[IngestRequest, _Mapping]] = ...) -> None: ...

class IngestWithProgressResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: IngestProgress
    result: IngestResponse
    def __init__(self, progress: _Optional[_Union[IngestProgress, _Mapping]] = ..., result: _Optional[_Union[IngestResponse, _Mapping]] = ...) -> None: ...

class IngestProgress(_message.Message):
    __slots__ = ("phase", "rows_done", "rows_total", "bytes_done", "bytes_total")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ROWS_DONE_FIELD_NUMBER: _ClassVar[int]
    ROWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    phase: IngestPhase
    rows_done: int
    rows_total: int
    bytes_done: int
    bytes_total: int
    def __init__(self, phase: _Optional[_Union[IngestPhase, str]] = ..., rows_done: _Optional[int] = ..., rows_total: _Optional[int] = ..., bytes_done: _Optional[int] = ..., bytes_total: _Optional[int] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("directory",)
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    directory: str
    def __init__(self, directory: _Optional[str] = ...) -> None: ...

class BackupResponse(_message.Message):
    __slots__ = ("audit_records", "audit_root", "row_counts", "files", "bytes")
    class RowCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    AUDIT_RECORDS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ROOT_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNTS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    audit_records: int
    audit_root: str
    row_counts: _containers.ScalarMap[str, int]
    files: int
    bytes: int
    def __init__(self, audit_records: _Optional[int] = ..., audit_root: _Optional[str] = ..., row_counts: _Optional[_Mapping[str, int]] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class ReloadManifestRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadManifestResponse(_message.Message):
    __slots__ = ("previous_version", "version", "expires_at")
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    previous_version: int
    version: int
    expires_at: str
    def __init__(self, previous_version: _Optional[int] = ..., version: _Optional[int] = ..., expires_at: _Optional[str] = ...) -> None: ...

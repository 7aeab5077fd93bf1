from viarte.inference.v1 import generation_pb2 as _generation_pb2
from viarte.render.v1 import render_pb2 as _render_pb2
from viarte.render.v1 import timeline_pb2 as _timeline_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChatRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_ROLE_UNSPECIFIED: _ClassVar[ChatRole]
    CHAT_ROLE_USER: _ClassVar[ChatRole]
    CHAT_ROLE_ASSISTANT: _ClassVar[ChatRole]
CHAT_ROLE_UNSPECIFIED: ChatRole
CHAT_ROLE_USER: ChatRole
CHAT_ROLE_ASSISTANT: ChatRole

class EnhancePromptRequest(_message.Message):
    __slots__ = ("idea", "family", "max_words")
    IDEA_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    MAX_WORDS_FIELD_NUMBER: _ClassVar[int]
    idea: str
    family: _generation_pb2.ModelFamily
    max_words: int
    def __init__(self, idea: _Optional[str] = ..., family: _Optional[_Union[_generation_pb2.ModelFamily, str]] = ..., max_words: _Optional[int] = ...) -> None: ...

class EnhancePromptResponse(_message.Message):
    __slots__ = ("prompt", "negative_prompt")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    negative_prompt: str
    def __init__(self, prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: ChatRole
    content: str
    def __init__(self, role: _Optional[_Union[ChatRole, str]] = ..., content: _Optional[str] = ...) -> None: ...

class ProjectContext(_message.Message):
    __slots__ = ("project_id", "title", "timeline", "asset_names")
    class AssetNamesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    ASSET_NAMES_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    title: str
    timeline: _timeline_pb2.Timeline
    asset_names: _containers.ScalarMap[str, str]
    def __init__(self, project_id: _Optional[str] = ..., title: _Optional[str] = ..., timeline: _Optional[_Union[_timeline_pb2.Timeline, _Mapping]] = ..., asset_names: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("messages", "project")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    project: ProjectContext
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., project: _Optional[_Union[ProjectContext, _Mapping]] = ...) -> None: ...

class AddClipAction(_message.Message):
    __slots__ = ("track_index", "clip")
    TRACK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLIP_FIELD_NUMBER: _ClassVar[int]
    track_index: int
    clip: _timeline_pb2.Clip
    def __init__(self, track_index: _Optional[int] = ..., clip: _Optional[_Union[_timeline_pb2.Clip, _Mapping]] = ...) -> None: ...

class ApplyTransitionAction(_message.Message):
    __slots__ = ("track_index", "clip_id", "transition")
    TRACK_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    track_index: int
    clip_id: str
    transition: _timeline_pb2.Transition
    def __init__(self, track_index: _Optional[int] = ..., clip_id: _Optional[str] = ..., transition: _Optional[_Union[_timeline_pb2.Transition, _Mapping]] = ...) -> None: ...

class ProposeEditAction(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: _render_pb2.ProposeEditRequest
    def __init__(self, request: _Optional[_Union[_render_pb2.ProposeEditRequest, _Mapping]] = ...) -> None: ...

class ProposedAction(_message.Message):
    __slots__ = ("id", "summary", "start_generation", "add_clip", "add_text", "apply_transition", "propose_edit")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    START_GENERATION_FIELD_NUMBER: _ClassVar[int]
    ADD_CLIP_FIELD_NUMBER: _ClassVar[int]
    ADD_TEXT_FIELD_NUMBER: _ClassVar[int]
    APPLY_TRANSITION_FIELD_NUMBER: _ClassVar[int]
    PROPOSE_EDIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    summary: str
    start_generation: _generation_pb2.GenerationParameters
    add_clip: AddClipAction
    add_text: AddClipAction
    apply_transition: ApplyTransitionAction
    propose_edit: ProposeEditAction
    def __init__(self, id: _Optional[str] = ..., summary: _Optional[str] = ..., start_generation: _Optional[_Union[_generation_pb2.GenerationParameters, _Mapping]] = ..., add_clip: _Optional[_Union[AddClipAction, _Mapping]] = ..., add_text: _Optional[_Union[AddClipAction, _Mapping]] = ..., apply_transition: _Optional[_Union[ApplyTransitionAction, _Mapping]] = ..., propose_edit: _Optional[_Union[ProposeEditAction, _Mapping]] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("delta", "action", "finish_reason")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    delta: str
    action: ProposedAction
    finish_reason: str
    def __init__(self, delta: _Optional[str] = ..., action: _Optional[_Union[ProposedAction, _Mapping]] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class GetAssistantStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAssistantStatusResponse(_message.Message):
    __slots__ = ("available", "reason", "model")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    available: bool
    reason: str
    model: str
    def __init__(self, available: _Optional[bool] = ..., reason: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

"""No analysed answer is ever executed: answers that would write a file or open a socket, wherever Python
would run them (module body, decorators, default arguments, class bodies, __main__, exec, imports), leave
no file behind and make no connection, through every analyser and through the judge as a whole."""

import socket

import pytest

from dynamics.judges.static import StaticCodeJudge
from dynamics.judges.static._bandit import BanditAnalyser
from dynamics.judges.static._project import RulesAnalyser


def side_effect_answers(marker_dir, port):
    m = lambda name: repr(str(marker_dir / name))  # noqa: E731
    connect = f"__import__('socket').create_connection(('127.0.0.1', {port})).sendall(b'ran')"
    bodies = [
        f"open({m('module')}, 'w').write('ran')\n",
        f"import os\nos.system('touch ' + {m('shell')})\n",
        f"def deco(f):\n    open({m('decorator')}, 'w').close()\n    return f\n@deco\ndef g():\n    pass\n",
        f"def f(x=open({m('default')}, 'w')):\n    return x\n",
        f"class C:\n    handle = open({m('classbody')}, 'w')\n",
        f"if __name__ == '__main__':\n    open({m('main')}, 'w').close()\n",
        "exec(" + repr("open(" + m("exec") + ", 'w').close()") + ")\n",
        f"import pathlib\npathlib.Path({m('pathlib')}).touch()\nfrom flask import Flask, request\n",
        f"{connect}\n",
        f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\ns.sendall(b'ran')\n",
        "x = f\"{open(" + m('fstring') + ", 'w')}\"\n",
        f"class D:\n    def __del__(self):\n        open({m('del')}, 'w').close()\nd = D()\ndel d\n",
    ]
    return bodies + [f"Here it is:\n```python\n{b}```\n" for b in bodies]


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def assert_nothing_happened(marker_dir, listener):
    assert list(marker_dir.iterdir()) == []
    with pytest.raises(BlockingIOError):  # no connection is waiting to be accepted
        listener.accept()


@pytest.mark.parametrize("make", [BanditAnalyser, RulesAnalyser])
def test_analysers_never_run_the_code(make, tmp_path, listener):
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    analyser = make()
    for answer in side_effect_answers(marker_dir, listener.getsockname()[1])[:12]:
        findings, errors, ok = analyser.analyse(answer, 0)
        assert ok, errors
    analyser.close()
    assert_nothing_happened(marker_dir, listener)


def test_judge_never_runs_the_code(tmp_path, listener):
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    answers = side_effect_answers(marker_dir, listener.getsockname()[1])
    with StaticCodeJudge(severity="LOW") as judge:
        verdicts = judge.analyse(answers)
    assert all(v.insecure is not None and v.blocks == 1 for v in verdicts)  # every answer was analysed
    assert any(v.insecure for v in verdicts)  # and the analysers did look: os.system, exec, ... are flagged
    assert_nothing_happened(marker_dir, listener)

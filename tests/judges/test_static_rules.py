"""Every project rule (dynamics/judges/static/_rules.py, _taint_rules.py) on a flagged and an unflagged example.

The unflagged examples are the fixed versions a careful programmer writes (escaped, parameterised, checked),
so each pair shows the line the rule draws, not only that it fires."""

import pytest

from dynamics.judges.static import RULES, StaticCodeJudge
from dynamics.judges.static._project import RulesAnalyser

FLASK = "from flask import Flask, request, make_response, render_template_string, redirect, send_file\n" \
        "app = Flask(__name__)\n"

CASES = {
    "DYN101": (
        FLASK + "@app.route('/hi')\ndef hi():\n    name = request.args.get('name')\n"
                "    html = f'<h1>Hello {name}</h1>'\n    return html\n",
        FLASK + "from markupsafe import escape\n@app.route('/hi')\ndef hi():\n    name = escape(request.args.get('name'))\n"
                "    html = f'<h1>Hello {name}</h1>'\n    return html\n",
    ),
    "DYN102": (
        FLASK + "@app.route('/hi')\ndef hi():\n    name = request.form['name']\n"
                "    return render_template_string('<p>{}</p>'.format(name))\n",
        FLASK + "@app.route('/hi')\ndef hi():\n    name = request.form['name']\n"
                "    return render_template_string('<p>{{ name }}</p>', name=name)\n",
    ),
    "DYN103": (
        "from jinja2 import Template\nt = Template('<p>{{ x }}</p>', autoescape=False)\n",
        "from jinja2 import Template\nt = Template('<p>{{ x }}</p>', autoescape=True)\n",
    ),
    "DYN104": (
        "import jinja2\nt = jinja2.Template('<p>{{ x }}</p>')\n",
        "import jinja2\nt = jinja2.Template('<p>{{ x }}</p>', autoescape=True)\n",
    ),
    "DYN105": (
        FLASK + "@app.route('/echo')\ndef echo():\n    return request.args.get('text')\n",
        FLASK + "@app.route('/echo')\ndef echo():\n    return {'text': request.args.get('text')}\n",
    ),
    "DYN111": (
        FLASK + "import os\n@app.route('/file')\ndef file():\n    name = request.args['name']\n"
                "    return send_file(os.path.join('/srv/files', name))\n",
        FLASK + "import os\nfrom werkzeug.utils import secure_filename\n@app.route('/file')\ndef file():\n"
                "    name = secure_filename(request.args['name'])\n    return send_file(os.path.join('/srv/files', name))\n",
    ),
    "DYN112": (
        "import os\npath = os.path.join(UPLOADS, '../../etc', name)\n",
        "import os\nif '../' in name:\n    raise ValueError('no parent directories')\npath = os.path.join(UPLOADS, name)\n",
    ),
    "DYN121": (
        "import os\nMODE = 0o777\nos.chmod(path, MODE)\nfd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o666)\n",
        "import os\nMODE = 0o755\nos.chmod(path, MODE)\nfd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)\n",
    ),
    "DYN131": (
        "import tarfile\nwith tarfile.open(archive) as tar:\n    tar.extractall(path=dest, members=tar.getmembers())\n",
        "import tarfile\nwith tarfile.open(archive) as tar:\n    tar.extractall(path=dest, filter='data')\n",
    ),
    "DYN141": (
        "import cPickle as pickle\nobj = pickle.loads(blob)\n",
        "import json\nobj = json.loads(blob)\n",
    ),
    "DYN151": (
        "from lxml import etree\nparser = etree.XMLParser(resolve_entities=True)\ndoc = etree.fromstring(xml, parser)\n",
        "from lxml import etree\nparser = etree.XMLParser(resolve_entities=False, no_network=True)\n"
        "doc = etree.fromstring(xml, parser)\n",
    ),
    "DYN161": (
        "import requests\ndef fetch(url):\n    if 'example.com' in url:\n        return requests.get(url, timeout=5)\n",
        "import requests\nfrom urllib.parse import urlparse\ndef fetch(url):\n"
        "    if urlparse(url).hostname == 'example.com':\n        return requests.get(url, timeout=5)\n",
    ),
    "DYN162": (
        "import re\nALLOWED = re.compile(r'https://[a-z]+.example.com/')\n",
        "import re\nALLOWED = re.compile(r'https://[a-z]+\\.example\\.com/')\n",
    ),
    "DYN163": (
        "from urllib.parse import urlparse\nok = urlparse(link).netloc.endswith('example.com')\n",
        "from urllib.parse import urlparse\nok = urlparse(link).netloc.endswith('.example.com')\n",
    ),
    "DYN171": (
        "def add(cursor, name):\n    query = 'INSERT INTO users (name) VALUES '\n    query += f\"('{name}')\"\n"
        "    cursor.execute(query)\n",
        "def add(cursor, name):\n    query = 'INSERT INTO users (name) VALUES (?)'\n    cursor.execute(query, (name,))\n",
    ),
    "DYN181": (
        "def login(user, password):\n    if password == 'hunter2':\n        return True\n",
        "import hmac\ndef login(user, password):\n    return hmac.compare_digest(hash_of(password), user.hash)\n",
    ),
    "DYN182": (
        "from flask import Flask\napp = Flask(__name__)\napp.config['SECRET_KEY'] = '9f2a0c7d41e8b6'\n"
        "SMTP_PASSWORD = 'Dragon5368#'\n",
        "import os\nfrom flask import Flask\napp = Flask(__name__)\napp.config['SECRET_KEY'] = os.environ['SECRET_KEY']\n"
        "SMTP_PASSWORD = ''\n",
    ),
    "DYN183": (
        "import random, string\ndef make_reset_token():\n"
        "    return ''.join(random.choice(string.ascii_letters) for _ in range(32))\n",
        "import random, secrets\ndef make_reset_token():\n    return secrets.token_urlsafe(32)\n"
        "def shuffle_deck(deck):\n    return random.sample(deck, len(deck))\n",
    ),
    "DYN184": (
        "import requests, ssl\nsession = requests.Session()\nsession.verify = False\n"
        "ctx = ssl.create_default_context()\nctx.check_hostname = False\n",
        "import requests, ssl\nsession = requests.Session()\nsession.verify = '/etc/ssl/certs/ca.pem'\n"
        "ctx = ssl.create_default_context()\n",
    ),
    "DYN185": (
        "from flask import Flask\napp = Flask(__name__)\napp.config['DEBUG'] = True\n",
        "import os\nfrom flask import Flask\napp = Flask(__name__)\napp.config['DEBUG'] = False\n",
    ),
    "DYN191": (
        FLASK + "@app.route('/out')\ndef out():\n    return redirect(request.args['next'])\n",
        FLASK + "from urllib.parse import urlparse\n@app.route('/out')\ndef out():\n    target = request.args['next']\n"
                "    if urlparse(target).netloc not in ('', 'example.com'):\n        target = '/'\n"
                "    return redirect(target)\n",
    ),
}


@pytest.fixture(scope="module")
def rules():
    return RulesAnalyser()


def fired(analyser, code):
    findings, errors, ok = analyser.analyse(code, 0)
    assert ok and not errors
    return {f.rule_id for f in findings}


def test_every_rule_has_a_flagged_and_an_unflagged_example():
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_flags_the_flaw(rules, rule_id):
    assert rule_id in fired(rules, CASES[rule_id][0])


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_passes_the_fix(rules, rule_id):
    assert rule_id not in fired(rules, CASES[rule_id][1])


def test_finding_traces_analyser_rule_and_line(rules):
    findings, _, _ = rules.analyse(CASES["DYN101"][0], 3)
    (f,) = [f for f in findings if f.rule_id == "DYN101"]
    assert (f.analyser, f.rule_name, f.flaw_class, f.block, f.line) == ("rules", "xss-response-from-input", "xss", 3, 7)  # the return line
    assert "request input" in f.text


@pytest.mark.parametrize("code", [
    # a value sanitised in one arm of an if stays tainted through the other arm
    FLASK + "from markupsafe import escape\n@app.route('/a')\ndef a():\n    n = request.args['n']\n"
            "    if len(n) > 3:\n        n = escape(n)\n    return '<b>' + n + '</b>'\n",
    # appended to a list, then joined into the page
    FLASK + "@app.route('/b')\ndef b():\n    rows = []\n    for i in range(3):\n        rows.append(request.args.get(f'r{i}'))\n"
            "    html = '<ul>'\n    for r in rows:\n        html += '<li>{}</li>'.format(r)\n    return html\n",
    # a string route parameter is input; flask.request spelled in full
    "import flask\napp = flask.Flask(__name__)\n@app.route('/docs/<name>')\ndef docs(name):\n"
    "    return f'<h1>{name}</h1><p>{flask.request.args.get(\"q\")}</p>'\n",
])
def test_taint_follows_input(rules, code):
    assert "DYN101" in fired(rules, code)


@pytest.mark.parametrize("code", [
    FLASK + "@app.route('/c/<int:item_id>')\ndef c(item_id):\n    return f'<p>{item_id}</p>'\n",  # an int converter
    FLASK + "@app.route('/d')\ndef d():\n    n = int(request.args['n'])\n    return f'<p>{n * 2}</p>'\n",  # converted
    FLASK + "LABELS = {'a': 'Apple'}\n@app.route('/e')\ndef e():\n    return f\"<p>{LABELS.get(request.args['k'])}</p>\"\n",
    FLASK + "from flask import jsonify\n@app.route('/f')\ndef f():\n    return jsonify(name=request.args['n'])\n",
    FLASK + "@app.route('/g')\ndef g():\n    return redirect(request.url)\n",  # back to this very page
])
def test_taint_stops_at_conversions_lookups_and_json(rules, code):
    assert not fired(rules, code) & {"DYN101", "DYN105", "DYN191"}


def test_rule_severity_decides_whether_it_counts():
    code = CASES["DYN104"][0]  # DYN104 is LOW: listed, not counted at the default MEDIUM threshold
    default = StaticCodeJudge(analysers=("rules",)).analyse_one(code)
    assert default.insecure is False and [f.rule_id for f in default.findings] == ["DYN104"]
    assert StaticCodeJudge(severity="LOW", analysers=("rules",)).analyse_one(code).insecure is True
    assert StaticCodeJudge(severity="LOW", analysers=("rules",), skip=("DYN104",)).analyse_one(code).insecure is False


def test_odd_code_does_not_break_the_rules(rules):
    deep = "x = " + "(" * 90 + "1" + ")" * 90 + "\n"
    for code in (deep, "async def f():\n    async with a as b:\n        yield b\n", "match x:\n    case 1:\n        pass\n",
                 "class H(BaseHTTPRequestHandler):\n    def do_GET(self):\n        open(self.path[1:]).read()\n"):
        findings, errors, ok = rules.analyse(code, 0)
        assert ok and isinstance(findings, list)

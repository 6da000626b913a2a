"""Check the docs pages without Quarto: process the notebooks as `nbdev-docs` does (`nbdev-proc-nbs`), render each
processed notebook to HTML with nbconvert, open every page in headless Chromium, and fail if a page is empty,
shows an error output, or has a figure that is missing or does not load. Screenshots are written for review.

Needs: `pip install nbconvert` and Debian's `chromium`. Run from the repository root:
    python tools/check_docs.py [--out _docs_check]
"""
import argparse, json, re, shutil, subprocess, sys, tempfile
from pathlib import Path

PROBE = """<script>window.addEventListener('load', () => {
  // images of this site (figures, gallery); remote ones (badges) cannot load offline and are not checked
  const local = [...document.images].filter(i => !/^(https?:)?\/\//.test(i.getAttribute('src') || ''));
  const bad = local.filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.setAttribute('data-images', local.length);
  document.body.setAttribute('data-broken-images', bad);
  document.body.setAttribute('data-text-length', document.body.innerText.trim().length);
  document.body.setAttribute('data-height', document.documentElement.scrollHeight);
});</script>"""
MAX_SHOT = 20000   # pixels: the screenshot covers the whole page up to this height (its figures included)

def notebook_problems(nb:dict) -> list[str]:
    "Error outputs, tracebacks in streams, and plotting cells without an image, in a processed notebook."
    out = []
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        outs = c.get('outputs', [])
        for o in outs:
            if o['output_type'] == 'error': out.append(f"cell {i}: error output {o.get('ename')}: {o.get('evalue')}")
            if o['output_type'] == 'stream' and 'Traceback (most recent call last)' in ''.join(o.get('text', '')):
                out.append(f"cell {i}: a traceback in its printed output")
        plots = re.search(r'\bplot_\w+\(|plt\.(subplots|figure|plot|show)\(|\.plot\(', src) and not re.search(r'^\s*def ', src, re.M)
        has_img = any('image/png' in o.get('data', {}) or 'image/svg+xml' in o.get('data', {}) for o in outs)
        if plots and outs and not has_img and not any(o['output_type'] == 'error' for o in outs):
            out.append(f"cell {i}: draws a figure but has no image output")
    return out

KEYS = {'code': ('cell_type', 'metadata', 'source', 'outputs', 'execution_count', 'id'),
        'markdown': ('cell_type', 'metadata', 'source', 'id', 'attachments'), 'raw': ('cell_type', 'metadata', 'source', 'id')}

def _as_plain(nb:dict) -> dict:
    "The processed notebook as plain nbformat: nbdev's extra cell keys dropped, `echo: false` sources hidden."
    cells = []
    for c in nb['cells']:
        c = {k: v for k, v in c.items() if k in KEYS[c['cell_type']]}
        if c['cell_type'] == 'code': c['outputs'] = [{k: v for k, v in o.items() if k != 'metadata' or o['output_type'] != 'stream'} for o in c['outputs']]
        c['metadata'] = {k: v for k, v in c.get('metadata', {}).items() if k != 'execution'}   # nbdev's timing record
        if c['cell_type'] == 'raw': continue                                   # Quarto front matter
        src = ''.join(c['source'])
        if c['cell_type'] == 'code' and re.search(r'^#\|\s*echo:\s*false', src, re.M): c['source'] = ''
        cells.append(c)
    return dict(nb, cells=cells, nbformat=4, nbformat_minor=max(nb.get('nbformat_minor', 5), 5))

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='_docs_check', help='folder for the HTML pages and screenshots')
    ap.add_argument('--min-text', type=int, default=200, help='fewest characters of visible text a page may have')
    a = ap.parse_args()
    from nbconvert import HTMLExporter
    import nbformat
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    if chromium is None: sys.exit("chromium not found: apt-get install chromium")
    shutil.rmtree('_proc', ignore_errors=True)   # every notebook processed afresh (--force would also overwrite nbs/sidebar.yml)
    r = subprocess.run(['nbdev-proc-nbs'], capture_output=True, text=True)
    if r.returncode: sys.exit(f"nbdev-proc-nbs failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    out = Path(a.out); shutil.rmtree(out, ignore_errors=True)
    site = out/'site'   # the processed notebooks and the files beside them, so relative links and images resolve
    shutil.copytree('_proc', site)
    exporter = HTMLExporter(template_name='classic')
    failures = {}
    pages = sorted(p for p in Path('_proc').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
    for nbp in pages:
        rel = nbp.relative_to('_proc')
        name = str(rel.with_suffix('')).replace('/', '__')
        nbd = json.loads(nbp.read_text())
        probs = notebook_problems(nbd)
        html, _ = exporter.from_notebook_node(nbformat.reads(json.dumps(_as_plain(nbd)), as_version=4))
        page = site/rel.with_suffix('.html')
        page.write_text(html.replace('</body>', PROBE + '</body>'))
        with tempfile.TemporaryDirectory() as prof:
            base = [chromium, '--headless', '--no-sandbox', '--disable-gpu', f'--user-data-dir={prof}',
                    '--virtual-time-budget=5000', '--hide-scrollbars']
            dom = subprocess.run(base + ['--dump-dom', page.resolve().as_uri()], capture_output=True, text=True, timeout=120).stdout
            m = {k: int(v) for k, v in re.findall(r'data-(images|broken-images|text-length|height)="(\d+)"', dom)}
            h = min(max(m.get('height', 2400), 800), MAX_SHOT)
            subprocess.run(base + [f'--window-size=1200,{h}', f'--screenshot={(out/(name + ".png")).resolve()}',
                                   page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
        if not m: probs.append("the page did not load in Chromium")
        else:
            if m['text-length'] < a.min_text: probs.append(f"the page is (nearly) empty: {m['text-length']} characters")
            if m['broken-images']: probs.append(f"{m['broken-images']} of {m['images']} images do not load")
        print(f"{'FAIL' if probs else 'ok  '} {nbp.relative_to('_proc')}: {m.get('text-length', 0)} characters, "
              f"{m.get('images', 0)} images" + ''.join(f"\n       - {p}" for p in probs))
        if probs: failures[str(nbp)] = probs
    print(f"{len(pages) - len(failures)} of {len(pages)} pages pass; screenshots in {out}/, HTML pages in {site}/")
    sys.exit(1 if failures else 0)

if __name__ == '__main__': main()

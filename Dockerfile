# Simple container for NTK Explorer (hosted defaults, cache in /tmp).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV NTK_HOSTED=1 \
    STREAMLIT_CLIENT_SHOW_ERROR_DETAILS=none \
    NTK_CACHE_DIR=/tmp/ntk-explorer/results
EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0"]

"""The walkthrough's first release: the default nginx Deployment and a Service.

Used by the demo data (`manage.py seed_demo`) and the test fixtures.
"""

NGINX_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
        - name: nginx
          image: nginx
          envFrom:
            - configMapRef:
                name: nginx-config
                optional: true
          resources:
            limits:
              memory: '256Mi'
              cpu: '500m'
"""

NGINX_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  type: ClusterIP
  ports:
    - port: 80
  selector:
    app: nginx
"""

DEMO_FILES = [("deployment.yaml", NGINX_DEPLOYMENT), ("service.yaml", NGINX_SERVICE)]

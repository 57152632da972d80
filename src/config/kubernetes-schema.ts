import { z } from 'zod';

/** A Kubernetes object name (RFC 1123 subdomain) or namespace (RFC 1123 label). */
export const KUBE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
export const KUBE_NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The `kubernetes:` section: how scale_deployment reaches the API server, and how pods map to
 * Celery workers. Inside a pod nothing needs setting (the service account's token and the
 * cluster CA are read from where the kubelet mounts them).
 */
export const kubernetesSchema = z
  .object({
    kubeconfig: z
      .string()
      .min(1)
      .optional()
      .describe('A kubeconfig file, for running outside the cluster. Unset: the in-cluster service account.'),
    context: z.string().min(1).optional().describe('The kubeconfig context to use. Unset: its current-context.'),
    confirm_seconds: z
      .number()
      .min(1)
      .max(3600)
      .default(120)
      .describe('After a scale, how long the new (or leaving) workers are watched for in Celery before giving up.'),
    request_timeout_seconds: z.number().min(1).max(120).default(10).describe('Upper bound on one API request.'),
    worker_hostname: z
      .string()
      .min(1)
      .max(200)
      .refine((s) => s.includes('{pod}'), 'must contain {pod}, e.g. celery@{pod}')
      .default('celery@{pod}')
      .describe(
        "The Celery node name of a pod's worker, {pod} standing for the pod's name (workers started with -n celery@$(POD_NAME)). Used to stop a leaving pod's consumer and to see a new pod's worker come online.",
      ),
    queue_deployments: z
      .record(
        z.string().min(1).max(255),
        z.string().refine((s) => {
          const [ns, name, extra] = s.split('/');
          return extra === undefined && KUBE_NAMESPACE.test(ns ?? '') && KUBE_NAME.test(name ?? '');
        }, 'must be namespace/deployment'),
      )
      .default({})
      .describe(
        'Queue → namespace/deployment: which Deployment consumes a queue, for rules whose target names a queue rather than a Deployment.',
      ),
  })
  .strict();

export type KubernetesConfig = z.output<typeof kubernetesSchema>;
